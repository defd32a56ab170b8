import type { FlagState } from '@aviary/sdk/core';
import { describe, expect, it } from 'vitest';
import { validateCanaryDocument, type CanaryDocument } from '../../server/canary/document.js';
import { isDrifted, renderFlagState } from '../../server/canary/flag-render.js';
import { CanaryConflict, heldMs, onDrift, onGuard, onManual, startRun, type CanaryRun } from '../../server/canary/state-machine.js';

const flag = {
  variants: [
    { key: 'on', value: true },
    { key: 'off', value: false },
  ],
};
const segments = new Set(['internal', 'beta']);

function doc(overrides: Record<string, unknown> = {}): CanaryDocument {
  const r = validateCanaryDocument(
    {
      control: 'off',
      canary: 'on',
      stages: [{ segment: 'internal' }, { percent: 5 }, { percent: 50 }, { percent: 100 }],
      stageDurationSeconds: 60,
      guard: { minSamples: 100 },
      ...overrides,
    },
    flag,
    (k) => segments.has(k),
  );
  if (!r.value) throw new Error(JSON.stringify(r.issues));
  return r.value;
}

const healthy = { decision: 'healthy' as const, why: 'fine' };
const regression = { decision: 'regression' as const, why: 'error rate 5% vs 1%' };
const insufficient = { decision: 'insufficient' as const, why: 'waiting' };

const baseState: FlagState = {
  enabled: true,
  offVariant: 'off',
  targets: [{ variant: 'on', keys: ['vip'] }],
  rules: [{ id: 'staff', conditions: [{ attribute: 'email', op: 'endsWith', values: ['@acme.com'] }], serve: { variant: 'on' } }],
  fallthrough: { variant: 'off' },
  version: 3,
};

describe('canary document validation', () => {
  it('fills guard defaults and accepts the contract example', () => {
    const d = doc();
    expect(d.guard).toEqual({ maxErrorRateIncrease: 0.01, maxLatencyIncreasePercent: 20, minSamples: 100, confidence: 0.95 });
    expect(d.bucketBy).toBe('key');
  });

  it('reports every problem the schema cannot see, with its path', () => {
    // Types, ranges and unknown members are the route's schema's (test/server/openapi-validation.test.ts).
    const r = validateCanaryDocument(
      {
        control: 'off',
        canary: 'nope',
        stages: [{ percent: 10 }, { percent: 5 }, { segment: 'ghost' }, { segment: 'internal' }, { segment: 'internal' }, { percent: 12.0001 }],
      },
      flag,
      (k) => segments.has(k),
    );
    expect(r.value).toBeNull();
    expect(r.issues.map((i) => i.path)).toEqual(['/canary', '/stages/1/percent', '/stages/2/segment', '/stages/4/segment', '/stages/5/percent']);
  });

  it('rejects control equal to canary', () => {
    const r = validateCanaryDocument({ control: 'on', canary: 'on', stages: [{ percent: 1 }] }, flag, () => true);
    expect(r.issues.map((i) => i.path)).toContain('/canary');
  });
});

describe('canary state machine', () => {
  it('holds a stage until stageDurationSeconds pass, then advances only while healthy', () => {
    const t0 = 1_000_000;
    let run = startRun(doc(), t0);
    let t = onGuard(run, healthy, t0 + 59_000);
    expect(t.run.stage).toBe(0);
    expect(t.flagChanged).toBe(false);
    t = onGuard(t.run, insufficient, t0 + 61_000);
    expect(t.run.stage).toBe(0);
    t = onGuard(t.run, healthy, t0 + 61_000);
    expect(t.run.stage).toBe(1);
    expect(t.action).toBe('canary.advance');
    expect(t.why).toContain('stage 1 (5%)');
    run = t.run;
    expect(run.stageStartedAt).toBe(t0 + 61_000);
    expect(run.windowStartedAt).toBe(t0 + 61_000);
  });

  it('rolls back at once on regression, even inside the hold and while paused', () => {
    const run = startRun(doc(), 0);
    const t = onGuard(run, regression, 1000);
    expect(t.run.state).toBe('rolled_back');
    expect(t.why).toContain('automatic rollback');
    expect(t.why).toContain('5% vs 1%');
    const paused = onManual(startRun(doc(), 0), 'pause', 10).run;
    expect(onGuard(paused, regression, 20).run.state).toBe('rolled_back');
  });

  it('completes after the last stage and keeps the previous window at 100%', () => {
    let run: CanaryRun = startRun(doc(), 0);
    let now = 0;
    for (let i = 0; i < 3; i++) {
      now += 60_000;
      run = onGuard(run, healthy, now).run;
    }
    expect(run.stage).toBe(3);
    // Control gets no traffic at 100%: the guard keeps comparing against the 50% stage's window.
    expect(run.windowStartedAt).toBe(120_000);
    now += 60_000;
    const t = onGuard(run, healthy, now);
    expect(t.run.state).toBe('completed');
    expect(t.action).toBe('canary.complete');
    expect(onGuard(t.run, regression, now + 1).action).toBeNull();
  });

  it('does not count paused time toward the hold', () => {
    let run = startRun(doc(), 0);
    run = onManual(run, 'pause', 30_000).run;
    expect(heldMs(run, 500_000)).toBe(30_000);
    expect(onGuard(run, healthy, 500_000).run.stage).toBe(0);
    run = onManual(run, 'resume', 500_000).run;
    expect(onGuard(run, healthy, 520_000).run.stage).toBe(0);
    expect(onGuard(run, healthy, 530_000).run.stage).toBe(1);
  });

  it('answers conflicts for manual actions the state does not allow', () => {
    const run = startRun(doc(), 0);
    expect(() => onManual(run, 'resume', 1)).toThrow(CanaryConflict);
    const done = onManual(run, 'rollback', 1).run;
    expect(() => onManual(done, 'pause', 2)).toThrow(CanaryConflict);
    expect(() => onManual(done, 'advance', 2)).toThrow(CanaryConflict);
    expect(onManual(done, 'promote', 2).run.state).toBe('promoted');
  });

  it('advances by hand regardless of hold and guard', () => {
    const run = startRun(doc(), 0);
    const t = onManual(run, 'advance', 1, 'looks good');
    expect(t.run.stage).toBe(1);
    expect(t.why).toContain('looks good');
  });
});

describe('canary as flag state', () => {
  it('a cohort stage appends a canary rule and keeps the operator targets and rules', () => {
    const s = renderFlagState(baseState, startRun(doc(), 0), 'checkout');
    expect(s.targets).toEqual(baseState.targets);
    expect(s.rules.map((r) => r.id)).toEqual(['staff', 'canary-cohort-internal']);
    expect(s.rules[1]).toMatchObject({ conditions: [{ segment: 'internal' }], serve: { variant: 'on' } });
    expect(s.fallthrough).toEqual({ variant: 'off' });
  });

  it('percent stages keep the cohort and put the canary first in the rollout', () => {
    const run = onManual(onManual(startRun(doc(), 0), 'advance', 1).run, 'advance', 2).run;
    const s = renderFlagState(baseState, run, 'checkout');
    expect(s.rules.map((r) => r.id)).toEqual(['staff', 'canary-cohort-internal']);
    expect(s.fallthrough).toEqual({
      rollout: {
        bucketBy: 'key',
        salt: 'checkout',
        weights: [
          { variant: 'on', percent: 50 },
          { variant: 'off', percent: 50 },
        ],
      },
    });
  });

  it('rollback serves control to everyone and promote serves the canary, keeping other rules', () => {
    const run = startRun(doc(), 0);
    const back = renderFlagState(renderFlagState(baseState, run, 'f'), onManual(run, 'rollback', 1).run, 'f');
    expect(back.rules.map((r) => r.id)).toEqual(['staff']);
    expect(back.fallthrough).toEqual({ variant: 'off' });
    const promoted = renderFlagState(baseState, onManual(run, 'promote', 1).run, 'f');
    expect(promoted.fallthrough).toEqual({ variant: 'on' });
    expect(promoted.targets).toEqual(baseState.targets);
  });

  it('detects a hand edit of what the canary controls and pauses for it', () => {
    const run = startRun(doc(), 0);
    const rendered = renderFlagState(baseState, run, 'f');
    expect(isDrifted(rendered, run, 'f')).toBe(false);
    expect(isDrifted({ ...rendered, targets: [] }, run, 'f')).toBe(false);
    expect(isDrifted({ ...rendered, fallthrough: { variant: 'on' } }, run, 'f')).toBe(true);
    const t = onDrift(run, 5);
    expect(t.run.state).toBe('paused');
    expect(t.why).toContain('changed by hand');
  });
});
