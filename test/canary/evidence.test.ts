/**
 * The guard's robust verdict (server/canary/evidence.ts): no single client-side unit (an SDK instance, or one key's
 * burst) decides, server-side evidence decides as before, and false rollbacks stay rare.
 */
import { latencyBucket } from '@aviary/sdk/core';
import { describe, expect, it } from 'vitest';
import { decide, emptyEvidence, emptySide, trimHistogram, type Evidence, type SideEvidence } from '../../server/canary/evidence.js';
import { seededRandom } from '../../server/canary/simulation.js';
import { compare, testAlpha, type GuardConfig } from '../../server/canary/stats.js';

const guard: GuardConfig = { maxErrorRateIncrease: 0.01, maxLatencyIncreasePercent: 20, minSamples: 100, confidence: 0.95 };
const alpha = testAlpha(guard, 4);
const variants = { canary: 'on', control: 'off' };

function side(outcomes: number, errors: number, unit: Partial<SideEvidence['maxUnit']> = {}, latencyMs?: number): SideEvidence {
  const latency = latencyMs === undefined ? {} : { [String(latencyBucket(latencyMs))]: outcomes };
  return {
    ...emptySide(),
    evaluations: outcomes,
    outcomes,
    errors,
    latency,
    instances: 1,
    keys: ['k'],
    maxUnit: {
      outcomes: unit.outcomes ?? outcomes,
      errors: unit.errors ?? errors,
      latencySamples: unit.latencySamples ?? (latencyMs === undefined ? 0 : outcomes),
    },
  };
}

function evidence(parts: Partial<{ server: Evidence['server']; client: Evidence['client'] }>): Evidence {
  return { ...emptyEvidence(), ...parts };
}

describe('the robust verdict', () => {
  it('without client-side evidence it is exactly the comparison of all evidence', () => {
    const e = evidence({ server: { canary: side(1000, 300), control: side(1000, 10) } });
    const plain = compare({ variant: 'on', totals: e.server.canary }, { variant: 'off', totals: e.server.control }, guard, alpha);
    const robust = decide(e, variants, guard, alpha, null);
    expect(robust.decision).toBe(plain.decision);
    expect(robust.why).toBe(plain.why);
    expect(robust.sources?.server.outcomes).toEqual({ canary: 1000, control: 1000 });
  });

  it('a regression that rests on one client-side unit is not decided', () => {
    // One unit holds all of it: removing the worst it could be leaves nothing.
    const e = evidence({ client: { canary: side(1000, 500), control: side(1000, 0) } });
    const c = decide(e, variants, guard, alpha, null);
    expect(c.decision).toBe('insufficient');
    expect(c.why).toMatch(/rests on a single client-side instance or one key's burst/);
  });

  it('a forged unit cannot make a bad canary look healthy', () => {
    // Honest client traffic: 30% vs 1% over 400/400, spread thin (largest unit 20 outcomes, 8 errors); one forged
    // unit adds 4,000 clean canary outcomes, diluting the canary's error rate to about 3%.
    const e = evidence({ client: { canary: side(4400, 120, { outcomes: 4000, errors: 8 }), control: side(400, 4, { outcomes: 20, errors: 1 }) } });
    const c = decide(e, variants, guard, alpha, null);
    expect(c.decision).not.toBe('healthy');
  });

  it('many small client-side units decide a real regression', () => {
    const e = evidence({ client: { canary: side(900, 360, { outcomes: 300, errors: 120 }), control: side(900, 45, { outcomes: 300, errors: 15 }) } });
    const c = decide(e, variants, guard, alpha, null);
    expect(c.decision).toBe('regression');
    expect(c.why).toMatch(/still a breach without the largest client-side contribution/);
  });

  it('server-side evidence alone still decides when client-side evidence would mask it', () => {
    const e = evidence({
      server: { canary: side(2000, 600), control: side(2000, 20) },
      // One client-side burst of clean canary outcomes and failing control outcomes.
      client: { canary: side(5000, 0), control: side(5000, 2500) },
    });
    const c = decide(e, variants, guard, alpha, null);
    expect(c.decision).toBe('regression');
    expect(c.why).toMatch(/^server-side evidence alone/);
  });

  it('a latency regression forged by one unit is not decided; real ones from many units are', () => {
    const forged = evidence({ client: { canary: side(1000, 0, {}, 500), control: side(1000, 0, {}, 20) } });
    expect(decide(forged, variants, guard, alpha, null).decision).toBe('insufficient');
    const spread = evidence({
      client: {
        canary: side(3000, 0, { outcomes: 100, latencySamples: 100 }, 60),
        control: side(3000, 0, { outcomes: 100, latencySamples: 100 }, 20),
      },
    });
    expect(decide(spread, variants, guard, alpha, null).decision).toBe('regression');
  });

  it('trims a histogram from the top or the bottom', () => {
    expect(trimHistogram({ '1': 5, '7': 3, '9': 2 }, 4, true)).toEqual({ '1': 5, '7': 1 });
    expect(trimHistogram({ '1': 5, '7': 3, '9': 2 }, 6, false)).toEqual({ '7': 2, '9': 2 });
  });

  it('rarely rolls back healthy client-side canaries (seeded simulation)', () => {
    // 300 healthy canaries (1% errors both sides), 40 browsers per minute each reporting a few outcomes, checked
    // after every minute for 20 minutes: the robust rule must stay within the guard's error budget (5%).
    const rng = seededRandom(20261206);
    let falseRollbacks = 0;
    for (let run = 0; run < 300; run++) {
      const e = evidence({ client: { canary: side(0, 0), control: side(0, 0) } });
      for (let minute = 0; minute < 20; minute++) {
        for (const s of [e.client.canary, e.client.control]) {
          let o = 0;
          let x = 0;
          for (let b = 0; b < 40; b++) {
            const n = 1 + Math.floor(rng() * 10);
            o += n;
            for (let k = 0; k < n; k++) if (rng() < 0.01) x++;
          }
          s.outcomes += o;
          s.errors += x;
          s.maxUnit = { outcomes: Math.max(s.maxUnit.outcomes, o), errors: Math.max(s.maxUnit.errors, x), latencySamples: 0 };
        }
        if (decide(e, variants, { ...guard, maxErrorRateIncrease: 0 }, alpha, null).decision === 'regression') {
          falseRollbacks++;
          break;
        }
      }
    }
    expect(falseRollbacks / 300).toBeLessThanOrEqual(0.05);
  });
});
