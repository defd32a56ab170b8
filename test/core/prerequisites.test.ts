/**
 * Prerequisites in the core (CONTRACT §12): what the compiled environment links, what a delta recompiles, cycles
 * that reach compilation anyway, the evaluation depth bound, validation with and without the environment's flags, and
 * the SDK evaluator's counts of prerequisite evaluations. The evaluation order itself is pinned by the golden cases
 * (test/cases/evaluation.json).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyChanges,
  applyTrustedChanges,
  compileEnvironment,
  compileTrustedEnvironment,
  evaluate,
  MAX_PREREQUISITE_DEPTH,
  validateFlagState,
  type CompiledEnvironment,
  type FlagConfig,
  type FlagState,
  type PrerequisiteFlags,
} from '../../sdk/core/index.js';
import { Evaluator } from '../../sdk/evaluator.js';

const bool = [
  { key: 'on', value: true },
  { key: 'off', value: false },
];
function flag(key: string, requires: string[] = [], over: Partial<FlagState> = {}): FlagConfig {
  return {
    key,
    kind: 'boolean',
    variants: bool,
    state: {
      enabled: true,
      offVariant: 'off',
      ...(requires.length ? { prerequisites: requires.map((f) => ({ flag: f, variants: ['on'] })) } : {}),
      targets: [],
      rules: [],
      fallthrough: { variant: 'on' },
      version: 1,
      ...over,
    },
  };
}
const env = (flags: FlagConfig[]) => compileEnvironment({ environment: 'e', version: 1, segments: [], flags });
const value = (e: CompiledEnvironment, key: string) => evaluate(e, key, { key: 'u' }, false);

describe('a delta recompiles the flags requiring what it changed', () => {
  const base = env([flag('parent'), flag('child', ['parent']), flag('grandchild', ['child']), flag('other')]);

  it('killing a parent turns off its dependents, nested ones too, and recompiles only them', () => {
    expect(value(base, 'grandchild')).toMatchObject({ value: true, reason: { kind: 'FALLTHROUGH' } });
    const next = applyChanges(base, [{ type: 'flag.upsert', flag: flag('parent', [], { enabled: false, version: 2 }) }], 2);
    expect(value(next, 'parent')).toMatchObject({ value: false, reason: { kind: 'OFF' } });
    expect(value(next, 'child')).toEqual({ value: false, variant: 'off', reason: { kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'parent' } });
    expect(value(next, 'grandchild')).toEqual({ value: false, variant: 'off', reason: { kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'child' } });
    expect(next.flags.get('child')).not.toBe(base.flags.get('child'));
    expect(next.flags.get('grandchild')).not.toBe(base.flags.get('grandchild'));
    expect(next.flags.get('other')).toBe(base.flags.get('other'));
    // The environment it was applied to still serves what it served.
    expect(value(base, 'grandchild')).toMatchObject({ value: true });
    // Reviving it brings them back.
    const revived = applyChanges(next, [{ type: 'flag.upsert', flag: flag('parent', [], { version: 3 }) }], 3);
    expect(value(revived, 'grandchild')).toMatchObject({ value: true, reason: { kind: 'FALLTHROUGH' } });
  });

  it('the trusted compilation the SDK uses does the same', () => {
    const trusted = compileTrustedEnvironment({ environment: 'e', version: 1, segments: [], flags: [flag('parent'), flag('child', ['parent'])] });
    const next = applyTrustedChanges(trusted, [{ type: 'flag.upsert', flag: flag('parent', [], { enabled: false }) }]);
    expect(value(next, 'child').reason).toEqual({ kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'parent' });
  });

  it('deleting a parent fails its dependents; upserting it again restores them', () => {
    const gone = applyChanges(base, [{ type: 'flag.delete', key: 'parent' }]);
    expect(value(gone, 'child').reason).toEqual({ kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'parent' });
    expect(value(gone, 'grandchild').reason).toEqual({ kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'child' });
    const back = applyChanges(gone, [{ type: 'flag.upsert', flag: flag('parent') }]);
    expect(value(back, 'grandchild')).toMatchObject({ value: true });
  });

  it('a parent arriving after its dependent (a later delta) is linked then', () => {
    const early = env([flag('child', ['late'])]);
    expect(value(early, 'child').reason).toEqual({ kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'late' });
    expect(value(applyChanges(early, [{ type: 'flag.upsert', flag: flag('late') }]), 'child')).toMatchObject({ value: true });
  });

  it('a segment change reaches the flags requiring a flag that uses it', () => {
    const seg = { key: 'beta', included: ['u'], excluded: [], rules: [] };
    const uses = flag('uses-beta', [], {
      rules: [{ id: 'r', conditions: [{ segment: 'beta' }], serve: { variant: 'on' } }],
      fallthrough: { variant: 'off' },
    });
    const e = compileEnvironment({ environment: 'e', version: 1, segments: [seg], flags: [uses, flag('child', ['uses-beta'])] });
    expect(value(e, 'child')).toMatchObject({ value: true });
    const next = applyChanges(e, [{ type: 'segment.upsert', segment: { ...seg, included: [] } }]);
    expect(value(next, 'child').reason).toEqual({ kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'uses-beta' });
  });
});

describe('cycles that reach compilation (the server refuses them) never loop or throw', () => {
  it('the members of a cycle are malformed, naming it; a flag requiring one fails its prerequisite', () => {
    const e = env([flag('a', ['b']), flag('b', ['c']), flag('c', ['a']), flag('d', ['a']), flag('self', ['self'])]);
    // Each member names a cycle through itself.
    expect(e.flags.get('a')!.error).toBe('prerequisite cycle: a → b → c → a');
    expect(e.flags.get('b')!.error).toBe('prerequisite cycle: b → c → a → b');
    expect(e.flags.get('c')!.error).toBe('prerequisite cycle: c → a → b → c');
    expect(e.flags.get('self')!.error).toBe('prerequisite cycle: self → self');
    expect(value(e, 'a')).toEqual({ value: false, reason: { kind: 'ERROR', errorCode: 'MALFORMED_FLAG' }, errorCode: 'MALFORMED_FLAG' });
    expect(value(e, 'd').reason).toEqual({ kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'a' });
    // The flags keep the snapshot's order.
    expect([...e.flags.keys()]).toEqual(['a', 'b', 'c', 'd', 'self']);
  });

  it('every member of a cycle is malformed, however the search meets it (a member reached only through finished flags)', () => {
    // r → a → r is found first; x → a reaches `a` after it finished, yet x → a → r → x is a cycle too.
    const e = env([flag('r', ['a', 'x']), flag('a', ['r']), flag('x', ['a'])]);
    expect(e.flags.get('x')!.error).toBe('prerequisite cycle: x → a → r → x');
    expect(e.flags.get('r')!.error).toBe('prerequisite cycle: r → a → r');
  });

  it('agrees with a reference evaluator on random graphs and random deltas (cycles, missing flags, kills)', () => {
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
    const node = fc.record({
      enabled: fc.boolean(),
      requires: fc.uniqueArray(fc.constantFrom(...keys, 'gone'), { maxLength: 3 }),
      variants: fc.constantFrom<string[]>(['on'], ['off'], ['on', 'off']),
      serves: fc.constantFrom('on', 'off'),
    });
    type Node = { enabled: boolean; requires: string[]; variants: string[]; serves: string };
    const config = (key: string, n: Node) =>
      flag(key, [], {
        enabled: n.enabled,
        fallthrough: { variant: n.serves },
        ...(n.requires.length ? { prerequisites: n.requires.map((f) => ({ flag: f, variants: n.variants })) } : {}),
      });
    /** §12 by the book: a flag that can reach itself is malformed; otherwise OFF, then prerequisites in order. */
    const reference = (graph: Map<string, Node>, key: string): unknown => {
      const reaches = (from: string, to: string, seen = new Set<string>()): boolean =>
        (graph.get(from)?.requires ?? []).some((d) => {
          if (d === to) return true;
          if (seen.has(d)) return false;
          seen.add(d);
          return reaches(d, to, seen);
        });
      const n = graph.get(key)!;
      if (reaches(key, key)) return { value: false, reason: { kind: 'ERROR', errorCode: 'MALFORMED_FLAG' }, errorCode: 'MALFORMED_FLAG' };
      if (!n.enabled) return { value: false, variant: 'off', reason: { kind: 'OFF' } };
      for (const d of n.requires) {
        const p = graph.get(d);
        const r = p === undefined ? null : (reference(graph, d) as { variant?: string });
        if (p === undefined || !p.enabled || r?.variant === undefined || !n.variants.includes(r.variant))
          return { value: false, variant: 'off', reason: { kind: 'PREREQUISITE_FAILED', prerequisiteKey: d } };
      }
      return { value: n.serves === 'on', variant: n.serves, reason: { kind: 'FALLTHROUGH' } };
    };
    fc.assert(
      fc.property(
        fc.tuple(...keys.map(() => node)),
        fc.array(fc.tuple(fc.constantFrom(...keys), fc.option(node, { nil: null })), { maxLength: 6 }),
        (nodes, deltas) => {
          const graph = new Map(keys.map((k, i) => [k, nodes[i]!]));
          let e = env([...graph].map(([k, n]) => config(k, n)));
          for (const [k, n] of deltas) {
            if (n === null) graph.delete(k);
            else graph.set(k, n);
            e = applyChanges(e, [n === null ? { type: 'flag.delete', key: k } : { type: 'flag.upsert', flag: config(k, n) }]);
            // The same state compiled from scratch answers the same.
            const fresh = env([...graph].map(([key, m]) => config(key, m)));
            for (const key of graph.keys()) {
              expect(value(e, key)).toEqual(reference(graph, key));
              expect(value(fresh, key)).toEqual(value(e, key));
            }
          }
          for (const key of graph.keys()) expect(value(e, key)).toEqual(reference(graph, key));
        },
      ),
      { numRuns: 400 },
    );
  });

  it('a delta that closes a cycle marks it, and one that breaks it heals every member', () => {
    const e = env([flag('a', ['b']), flag('b')]);
    const closed = applyChanges(e, [{ type: 'flag.upsert', flag: flag('b', ['a']) }]);
    expect(closed.flags.get('a')!.error).toMatch(/prerequisite cycle/);
    expect(closed.flags.get('b')!.error).toMatch(/prerequisite cycle/);
    const healed = applyChanges(closed, [{ type: 'flag.upsert', flag: flag('b') }]);
    expect(healed.flags.get('a')!.error).toBeNull();
    expect(value(healed, 'a')).toMatchObject({ value: true, reason: { kind: 'FALLTHROUGH' } });
  });

  it(`a chain deeper than ${MAX_PREREQUISITE_DEPTH} fails at that depth instead of recursing further`, () => {
    const n = 5000;
    const flags = Array.from({ length: n }, (_, i) => flag(`f${i}`, i + 1 < n ? [`f${i + 1}`] : []));
    const e = env(flags);
    expect(e.flags.get('f0')!.error).toBeNull();
    expect(value(e, 'f0').reason).toEqual({ kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'f1' });
    expect(value(e, `f${n - MAX_PREREQUISITE_DEPTH}`)).toMatchObject({ value: true, reason: { kind: 'FALLTHROUGH' } });
  });
});

describe('validateFlagState: prerequisites', () => {
  const def = { key: 'child', kind: 'boolean' as const, variants: bool };
  const state = (prerequisites: unknown) => ({ enabled: true, offVariant: 'off', fallthrough: { variant: 'on' }, prerequisites });
  const flags: PrerequisiteFlags = new Map([
    ['parent', { variants: ['on', 'off'], prerequisites: [] }],
    ['mid', { variants: ['on', 'off'], prerequisites: ['child'] }],
    ['top', { variants: ['on', 'off'], prerequisites: ['mid'] }],
    ['child', { variants: ['on', 'off'], prerequisites: [] }],
  ]);
  const issues = (input: unknown, f?: PrerequisiteFlags) => {
    const r = validateFlagState(input, def, new Set(), f);
    return r.ok ? [] : r.issues;
  };

  it('keeps a valid list, and leaves an empty one out of the stored state', () => {
    const ok = validateFlagState(state([{ flag: 'parent', variants: ['on', 'off'] }]), def, new Set(), flags);
    expect(ok).toMatchObject({ ok: true, value: { prerequisites: [{ flag: 'parent', variants: ['on', 'off'] }] } });
    const empty = validateFlagState(state([]), def, new Set(), flags);
    expect(empty.ok && 'prerequisites' in empty.value).toBe(false);
  });

  it('refuses bad shapes with their paths, with or without the flags', () => {
    expect(issues(state({}))).toEqual([{ path: '/prerequisites', message: 'must be an array, got object' }]);
    expect(issues(state([{ flag: 'Bad Key', variants: ['on'] }]))[0]!.path).toBe('/prerequisites/0/flag');
    expect(issues(state([{ flag: 'child', variants: ['on'] }]))).toEqual([
      { path: '/prerequisites/0/flag', message: 'a flag cannot require itself' },
    ]);
    expect(issues(state([{ flag: 'parent', variants: [] }]))).toEqual([
      { path: '/prerequisites/0/variants', message: 'must list at least one variant' },
    ]);
    expect(issues(state([{ flag: 'parent', variants: ['on', 'on'] }]))).toEqual([
      { path: '/prerequisites/0/variants', message: 'must not list a variant twice' },
    ]);
    expect(issues(state([{ flag: 'parent', variants: ['on'], extra: 1 }]))).toEqual([
      { path: '/prerequisites/0/extra', message: 'is not a known property' },
    ]);
    expect(
      issues(
        state([
          { flag: 'parent', variants: ['on'] },
          { flag: 'parent', variants: ['off'] },
        ]),
      ),
    ).toEqual([{ path: '/prerequisites/1/flag', message: 'duplicates /prerequisites/0' }]);
  });

  it('without the flags, an unknown flag or variant passes (evaluation fails it); with them, both are refused', () => {
    expect(issues(state([{ flag: 'nope', variants: ['yes'] }]))).toEqual([]);
    expect(issues(state([{ flag: 'nope', variants: ['on'] }]), flags)).toEqual([
      { path: '/prerequisites/0/flag', message: 'unknown flag "nope" (no live flag of that key in this environment)' },
    ]);
    expect(issues(state([{ flag: 'parent', variants: ['on', 'maybe'] }]), flags)).toEqual([
      { path: '/prerequisites/0/variants/1', message: '"maybe" is not a variant of flag "parent" (on, off)' },
    ]);
  });

  it('refuses a cycle, naming its path', () => {
    expect(
      issues(
        state([
          { flag: 'parent', variants: ['on'] },
          { flag: 'top', variants: ['on'] },
        ]),
        flags,
      ),
    ).toEqual([{ path: '/prerequisites/1/flag', message: 'would create a cycle: child → top → mid → child' }]);
  });
});

describe('the SDK evaluator counts prerequisite evaluations for the required flag', () => {
  it('as LaunchDarkly records them: each prerequisite evaluated, with what it served', () => {
    const ev = new Evaluator({
      environment: 'e',
      version: 1,
      segments: [],
      flags: [
        flag('parent', [], {
          rules: [{ id: 'pro', conditions: [{ attribute: 'plan', op: 'in', values: ['pro'] }], serve: { variant: 'on' } }],
          fallthrough: { variant: 'off' },
        }),
        flag('child', ['parent']),
        flag('grandchild', ['child']),
      ],
    });
    ev.evaluate('grandchild', { key: 'u', plan: 'pro' }, false);
    ev.evaluate('grandchild', { key: 'u', plan: 'free' }, false);
    ev.evaluate('parent', { key: 'u', plan: 'pro' }, false);
    // peek (track, allFlags) counts nothing, prerequisites included.
    ev.peek('grandchild', { key: 'u', plan: 'pro' }, false);
    const rows = ev.drain(60_000).map((r) => [r.flag, r.variant, r.evaluations, r.reasons]);
    expect(rows).toEqual([
      ['parent', 'on', 2, { RULE_MATCH: 2 }],
      ['parent', 'off', 1, { FALLTHROUGH: 1 }],
      ['child', 'on', 1, { FALLTHROUGH: 1 }],
      ['child', 'off', 1, { PREREQUISITE_FAILED: 1 }],
      ['grandchild', 'on', 1, { FALLTHROUGH: 1 }],
      ['grandchild', 'off', 1, { PREREQUISITE_FAILED: 1 }],
    ]);
  });

  it('names the dependents of a changed prerequisite among the changed flags (so `change` events reach them)', () => {
    const ev = new Evaluator({ environment: 'e', version: 1, segments: [], flags: [flag('parent'), flag('child', ['parent']), flag('other')] });
    expect(ev.applyChanges([{ type: 'flag.upsert', flag: flag('parent', [], { enabled: false }) }], 2)).toEqual(['child', 'parent']);
  });
});
