/** The targeting preview the console shows: what a change does to contexts, computed with the SDKs' own core. */
import { describe, expect, it } from 'vitest';
import type { FlagDefinition, FlagState } from '@aviary/sdk/core';
import { percentSum, previewReassignment, sampleAttributes } from '../../console/src/lib/preview.js';

const flag: FlagDefinition = {
  key: 'new-checkout',
  kind: 'boolean',
  variants: [
    { key: 'on', value: true },
    { key: 'off', value: false },
  ],
};
const rollout = (on: number): FlagState => ({
  enabled: true,
  offVariant: 'off',
  targets: [],
  rules: [],
  fallthrough: {
    rollout: {
      weights: [
        { variant: 'on', percent: on },
        { variant: 'off', percent: 100 - on },
      ],
    },
  },
  version: 1,
});

describe('previewReassignment', () => {
  it("shows the flag's own targeting, assuming its prerequisites hold (their states are not at hand)", () => {
    const gated = { ...rollout(50), prerequisites: [{ flag: 'gate', variants: ['on'] }] };
    const r = previewReassignment(flag, rollout(10), gated, [], { sample: 2000 });
    expect(r.after['off']).toBeLessThan(1200);
    expect(r.moved).toBeGreaterThan(0);
    expect(r.transitions.map((t) => [t.from, t.to])).toEqual([['off', 'on']]);
  });

  it('growing a rollout only moves contexts into the canary variant (ramp stability), in about the right number', () => {
    const p = previewReassignment(flag, rollout(10), rollout(25), [], { sample: 10_000, canaryVariant: 'on' });
    expect(p.sample).toBe(10_000);
    expect(p.transitions.map((t) => `${t.from}->${t.to}`)).toEqual(['off->on']);
    expect(p.leavingCanary).toBe(0);
    expect(p.moved).toBeGreaterThan(1300);
    expect(p.moved).toBeLessThan(1700);
    expect((p.before.on ?? 0) + p.moved).toBe(p.after.on);
  });

  it('shrinking it, or sending everyone to the control, counts the contexts leaving a running canary', () => {
    const shrink = previewReassignment(flag, rollout(50), rollout(20), [], { sample: 5000, canaryVariant: 'on' });
    expect(shrink.leavingCanary).toBe(shrink.moved);
    expect(shrink.leavingCanary).toBe((shrink.before.on ?? 0) - (shrink.after.on ?? 0));
    expect(shrink.leavingExamples.length).toBe(5);

    const allOff = previewReassignment(flag, rollout(50), { ...rollout(0), fallthrough: { variant: 'off' } }, [], {
      sample: 2000,
      canaryVariant: 'on',
    });
    expect(allOff.after).toEqual({ off: 2000 });
    expect(allOff.leavingCanary).toBe(allOff.before.on);
  });

  it('includes targeted keys and honours rules on the sample attributes and segments', () => {
    const before = rollout(0);
    const after: FlagState = {
      ...before,
      targets: [{ variant: 'on', keys: ['ceo'] }],
      rules: [{ id: 'staff', conditions: [{ segment: 'staff' }], serve: { variant: 'on' } }],
    };
    const segment = {
      key: 'staff',
      included: [],
      excluded: [],
      rules: [{ conditions: [{ attribute: 'email', op: 'endsWith' as const, values: ['@acme.com'] }] }],
    };
    const outside = previewReassignment(flag, before, after, [segment], { sample: 100, attributes: { email: 'a@example.com' } });
    expect(outside.sample).toBe(101);
    expect(outside.moved).toBe(1);
    const inside = previewReassignment(flag, before, after, [segment], { sample: 100, attributes: { email: 'a@acme.com' } });
    expect(inside.moved).toBe(101);
    expect(inside.after).toEqual({ on: 101 });
  });

  it('spreads sample attributes by share, deterministically and independently per attribute, so rules on them match that share', () => {
    const pro: FlagState = {
      ...rollout(0),
      rules: [{ id: 'pro', conditions: [{ attribute: 'plan', op: 'in', values: ['pro'] }], serve: { variant: 'on' } }],
    };
    const distributions = [
      {
        attribute: 'plan',
        values: [
          { value: 'pro', percent: 30 },
          { value: 'free', percent: 70 },
        ],
      },
      { attribute: 'beta', values: [{ value: true, percent: 50 }] },
    ];
    const r = previewReassignment(flag, rollout(0), pro, [], { sample: 10_000, distributions });
    expect(r.moved).toBeGreaterThan(2800);
    expect(r.moved).toBeLessThan(3200);
    expect(previewReassignment(flag, rollout(0), pro, [], { sample: 10_000, distributions })).toEqual(r);
    const spread = sampleAttributes(distributions);
    expect(spread('sample-7')).toEqual(spread('sample-7'));
    const plans = { pro: 0, free: 0 } as Record<string, number>;
    let beta = 0;
    let proAndBeta = 0;
    for (let i = 0; i < 10_000; i++) {
      const a = spread(`sample-${i}`);
      plans[a['plan'] as string]!++;
      // Shares under 100% leave the rest without the attribute.
      if (a['beta'] === true) beta++;
      else expect('beta' in a).toBe(false);
      if (a['beta'] === true && a['plan'] === 'pro') proAndBeta++;
    }
    expect(plans['pro']! + plans['free']!).toBe(10_000);
    expect(Math.abs(beta - 5000)).toBeLessThan(250);
    // Independent: about half of the pro contexts are in beta.
    expect(Math.abs(proAndBeta - plans['pro']! / 2)).toBeLessThan(150);
    // A rule on a share of 0% matches nobody; constant attributes still apply, the distributions win over them.
    const none = previewReassignment(flag, rollout(0), pro, [], {
      sample: 1000,
      attributes: { plan: 'pro' },
      distributions: [{ attribute: 'plan', values: [{ value: 'free', percent: 100 }] }],
    });
    expect(none.moved).toBe(0);
  });

  it('sums percents to three decimals without floating-point noise', () => {
    expect(percentSum([{ percent: 33.333 }, { percent: 33.333 }, { percent: 33.334 }])).toBe(100);
    expect(percentSum([{ percent: 0.1 }, { percent: 0.2 }])).toBe(0.3);
  });
});
