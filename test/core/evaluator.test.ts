import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  evaluateFlag,
  type EnvironmentSnapshot,
  type EvaluationContext,
  type EvaluationDetail,
  type FlagConfig,
  type PatternEngine,
} from '../../sdk/core/index.js';
import { Evaluator } from '../../sdk/evaluator.js';

const bool = [
  { key: 'on', value: true },
  { key: 'off', value: false },
];
function flag(key: string, over: Partial<FlagConfig['state']> = {}, variants = bool): FlagConfig {
  return {
    key,
    kind: 'boolean',
    variants,
    state: {
      enabled: true,
      offVariant: 'off',
      targets: [{ variant: 'on', keys: ['vip'] }],
      rules: [],
      fallthrough: {
        rollout: {
          weights: [
            { variant: 'on', percent: 50 },
            { variant: 'off', percent: 50 },
          ],
        },
      },
      version: 1,
      ...over,
    },
  };
}
const snapshot: EnvironmentSnapshot = { environment: 'e', version: 1, segments: [], flags: [flag('a'), flag('b', { enabled: false })] };
const minute = 1_700_000_040_000;

describe('Evaluator', () => {
  it('counts evaluations per flag, variant and reason, and drain resets them', () => {
    const ev = new Evaluator(snapshot);
    let on = 0;
    for (let i = 0; i < 1000; i++) if (ev.evaluate('a', { key: `u${i}` }, false).value) on++;
    ev.evaluate('a', { key: 'vip' }, false);
    ev.evaluate('a', { key: 'vip' }, 'wrong type');
    ev.evaluate('b', { key: 'u1' }, false);
    ev.evaluate('missing', { key: 'u1' }, false);
    const stats = ev.drain(minute);
    expect(stats).toEqual(
      expect.arrayContaining([
        { flag: 'a', variant: 'on', minute, evaluations: on + 1, reasons: { FALLTHROUGH: on, TARGET_MATCH: 1 }, outcomes: 0, errors: 0 },
        { flag: 'a', variant: 'off', minute, evaluations: 1000 - on, reasons: { FALLTHROUGH: 1000 - on }, outcomes: 0, errors: 0 },
        { flag: 'a', variant: null, minute, evaluations: 1, reasons: { ERROR: 1 }, outcomes: 0, errors: 0 },
        { flag: 'b', variant: 'off', minute, evaluations: 1, reasons: { OFF: 1 }, outcomes: 0, errors: 0 },
        { flag: 'missing', variant: null, minute, evaluations: 1, reasons: { ERROR: 1 }, outcomes: 0, errors: 0 },
      ]),
    );
    expect(stats).toHaveLength(5);
    expect(ev.drain(minute + 60_000)).toEqual([]);
  });

  it('does not count peek or evaluateAll', () => {
    const ev = new Evaluator(snapshot);
    expect(ev.peek('a', { key: 'vip' }, false).variant).toBe('on');
    expect(Object.keys(ev.evaluateAll({ key: 'vip' }))).toEqual(['a', 'b']);
    expect(ev.drain(minute)).toEqual([]);
  });

  it('returns the same frozen detail for evaluations without a bucket', () => {
    const ev = new Evaluator(snapshot);
    const first = ev.evaluate('b', { key: 'x' }, false);
    expect(ev.evaluate('b', { key: 'y' }, false)).toBe(first);
    expect(Object.isFrozen(first) && Object.isFrozen(first.reason)).toBe(true);
  });

  it('keeps counting across updates and reports counts of flags that changed variants or went away', () => {
    const ev = new Evaluator(snapshot);
    ev.evaluate('a', { key: 'vip' }, false);
    ev.evaluate('b', { key: 'vip' }, false);
    const changed = ev.applyChanges([
      { type: 'flag.upsert', flag: flag('a', { version: 2, fallthrough: { variant: 'on' } }) },
      {
        type: 'flag.upsert',
        flag: flag('b', { version: 2, targets: [{ variant: 'yes', keys: ['vip'] }], fallthrough: { variant: 'off' } }, [
          { key: 'yes', value: true },
          { key: 'off', value: false },
        ]),
      },
    ]);
    expect(changed.sort()).toEqual(['a', 'b']);
    ev.evaluate('a', { key: 'vip' }, false);
    ev.evaluate('b', { key: 'vip' }, false);
    ev.setEnvironment({ ...snapshot, flags: [flag('a')] });
    const stats = ev.drain(minute);
    expect(stats).toContainEqual({ flag: 'a', variant: 'on', minute, evaluations: 2, reasons: { TARGET_MATCH: 2 }, outcomes: 0, errors: 0 });
    expect(stats).toContainEqual({ flag: 'b', variant: 'off', minute, evaluations: 1, reasons: { OFF: 1 }, outcomes: 0, errors: 0 });
    // b's second version served `yes` to the target; b was then removed, and its counts still arrive once.
    expect(stats).toContainEqual({ flag: 'b', variant: 'yes', minute, evaluations: 1, reasons: { TARGET_MATCH: 1 }, outcomes: 0, errors: 0 });
    expect(stats).toHaveLength(3);
  });

  it('counts every golden case under the variant and the reason kind it answered', () => {
    const file = JSON.parse(readFileSync(join(import.meta.dirname, '../cases/evaluation.json'), 'utf8')) as {
      environment: EnvironmentSnapshot;
      cases: { flag: string; context: EvaluationContext; default: unknown }[];
    };
    const ev = new Evaluator(file.environment);
    const expected = new Map<string, { flag: string; variant: string | null; reasons: Record<string, number> }>();
    const add = (flag: string, d: EvaluationDetail<unknown>) => {
      const variant = d.variant ?? null;
      const row = expected.get(`${flag}/${variant}`) ?? { flag, variant, reasons: {} };
      row.reasons[d.reason.kind] = (row.reasons[d.reason.kind] ?? 0) + 1;
      expected.set(`${flag}/${variant}`, row);
    };
    for (let round = 0; round < 3; round++) {
      for (const c of file.cases) {
        add(c.flag, ev.evaluate(c.flag, c.context, c.default));
        // Each prerequisite evaluated on the way counts for its own flag, with what it served (the core says which).
        const flag = ev.environment.flags.get(c.flag);
        if (flag) evaluateFlag(flag, c.context, c.default, false, (p, d) => add(p.key, d));
      }
    }
    const got = ev.drain(minute).map(({ flag, variant, reasons, evaluations }) => ({ flag, variant, reasons, evaluations }));
    const want = [...expected.values()].map((r) => ({ ...r, evaluations: Object.values(r.reasons).reduce((a, b) => a + b, 0) }));
    expect(new Set(got.flatMap((r) => Object.keys(r.reasons!)))).toEqual(
      new Set(['OFF', 'TARGET_MATCH', 'RULE_MATCH', 'FALLTHROUGH', 'ERROR', 'PREREQUISITE_FAILED']),
    );
    expect(got).toHaveLength(want.length);
    expect(got).toEqual(expect.arrayContaining(want));
  });

  it('compiles snapshots and changes with the pattern engine of its options', () => {
    const liar: PatternEngine = () => () => true; // answers "matches" to everything, so its use shows
    const staff = (pattern: string) =>
      flag('staff', {
        rules: [{ id: 'r', conditions: [{ attribute: 'email', op: 'matches', values: [pattern] }], serve: { variant: 'on' } }],
        fallthrough: { variant: 'off' },
        targets: [],
      });
    const eve = { key: 'u', email: 'eve@evil.example' };
    const lying = new Evaluator({ ...snapshot, flags: [staff('@acme')] }, { patternEngine: liar });
    const plain = new Evaluator({ ...snapshot, flags: [staff('@acme')] });
    expect([lying.evaluate('staff', eve, false).value, plain.evaluate('staff', eve, false).value]).toEqual([true, false]);
    lying.setEnvironment({ ...snapshot, version: 2, flags: [staff('@example')] });
    plain.setEnvironment({ ...snapshot, version: 2, flags: [staff('@example')] });
    expect([lying.evaluate('staff', eve, false).value, plain.evaluate('staff', eve, false).value]).toEqual([true, false]);
    lying.applyChanges([{ type: 'flag.upsert', flag: staff('^nobody$') }], 3);
    plain.applyChanges([{ type: 'flag.upsert', flag: staff('evil') }], 3);
    expect([lying.evaluate('staff', eve, false).value, plain.evaluate('staff', eve, false).value]).toEqual([true, true]);
  });

  it('bounds the memory spent on unknown flag keys', () => {
    const ev = new Evaluator(snapshot, { maxUnknownFlags: 10 });
    for (let i = 0; i < 10_000; i++) expect(ev.evaluate(`nope-${i}`, { key: 'u' }, 7).value).toBe(7);
    expect(ev.droppedUnknownEvaluations).toBe(9_990);
    const stats = ev.drain(minute);
    expect(stats).toHaveLength(10);
    expect(ev.droppedUnknownEvaluations).toBe(0);
  });
});
