import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compileEnvironment,
  evaluate,
  evaluateAll,
  OPERATORS,
  validateFlagDefinition,
  validateFlagState,
  validateSegment,
  type FlagConfig,
  type Segment,
} from '../../sdk/core/index.js';

const attributes = ['key', 'plan', 'age', 'v', 'd', 'email', 'tags', 'constructor', '__proto__', 'toString'];
const scalar = fc.oneof(fc.string({ maxLength: 8 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean());

function valuesFor(op: string): fc.Arbitrary<unknown[] | undefined> {
  switch (op) {
    case 'exists':
      return fc.constant(undefined);
    case 'in':
      return fc.array(scalar, { minLength: 1, maxLength: 4 });
    case 'startsWith':
    case 'endsWith':
    case 'contains':
      return fc.array(fc.string({ maxLength: 4 }), { minLength: 1, maxLength: 3 });
    case 'matches':
      return fc.array(fc.constantFrom('^a', 'b$', '(a|b)*c', '\\d+', '[^x]{2,3}', '^(a+)+$', ''), { minLength: 1, maxLength: 2 });
    case 'semverEq':
    case 'semverLt':
    case 'semverGt':
      return fc.array(fc.constantFrom('1.0.0', '1.0.0-rc.1', '2.10.3+b', '0.0.1-alpha.beta.1'), { minLength: 1, maxLength: 2 });
    case 'before':
    case 'after':
      return fc.array(fc.oneof(fc.constantFrom('2024-01-01', '2024-02-29T12:00:00Z', '1999-12-31T23:59:59.5+05:30'), fc.integer()), {
        minLength: 1,
        maxLength: 2,
      });
    default:
      return fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 3 });
  }
}

const attributeCondition = fc
  .record({ attribute: fc.constantFrom(...attributes), op: fc.constantFrom(...OPERATORS), negate: fc.boolean() })
  .chain((c) => valuesFor(c.op).map((values) => (values === undefined ? c : { ...c, values })));
const condition = fc.oneof(attributeCondition, fc.record({ segment: fc.constantFrom('s1', 's2'), negate: fc.boolean() }));
const variantKey = fc.constantFrom('a', 'b', 'c');
const rollout = fc
  .record({
    split: fc.integer({ min: 0, max: 100_000 }),
    bucketBy: fc.option(fc.constantFrom(...attributes), { nil: undefined }),
    salt: fc.option(fc.string({ maxLength: 6 }), { nil: undefined }),
  })
  .map(({ split, bucketBy, salt }) => ({
    rollout: {
      weights: [
        { variant: 'a', percent: split / 1000 },
        { variant: 'c', percent: (100_000 - split) / 1000 },
      ],
      ...(bucketBy === undefined ? {} : { bucketBy }),
      ...(salt === undefined ? {} : { salt }),
    },
  }));
const serve = fc.oneof(
  variantKey.map((variant) => ({ variant })),
  rollout,
);
const flagArb = fc.record({
  kind: fc.constantFrom('string', 'json'),
  enabled: fc.boolean(),
  offVariant: variantKey,
  targets: fc.array(fc.record({ variant: variantKey, keys: fc.uniqueArray(fc.constantFrom('u1', 'u2', 'u3'), { maxLength: 2 }) }), { maxLength: 1 }),
  rules: fc.array(fc.record({ conditions: fc.array(condition, { maxLength: 3 }), serve }), { maxLength: 4 }),
  fallthrough: serve,
});
const segmentArb = (key: string) =>
  fc.record({
    key: fc.constant(key),
    included: fc.uniqueArray(fc.constantFrom('u1', 'u2'), { maxLength: 2 }),
    excluded: fc.uniqueArray(fc.constantFrom('u2', 'u3'), { maxLength: 2 }),
    rules: fc.array(fc.record({ conditions: fc.array(attributeCondition, { maxLength: 2 }) }), { maxLength: 2 }),
  });
const attributeValue = fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }), fc.constant(null), fc.anything());
const contextArb = fc.oneof(fc.dictionary(fc.constantFrom(...attributes), attributeValue, { maxKeys: 6 }), fc.anything() as fc.Arbitrary<never>);
const defaultArb = fc.oneof(fc.boolean(), fc.string(), fc.double(), fc.constant(null), fc.object(), fc.constant(undefined));

describe('evaluation never throws', () => {
  it('for any flag that validates and any context', () => {
    fc.assert(
      fc.property(flagArb, segmentArb('s1'), segmentArb('s2'), contextArb, defaultArb, (f, s1, s2, context, def) => {
        const variants =
          f.kind === 'string'
            ? ['a', 'b', 'c'].map((k) => ({ key: k, value: k }))
            : [
                { key: 'a', value: { x: [1] } },
                { key: 'b', value: null },
                { key: 'c', value: 3 },
              ];
        const definition = validateFlagDefinition({ key: 'flag', kind: f.kind, variants });
        const segs = [validateSegment(s1), validateSegment(s2)];
        if (!definition.ok || !segs.every((s) => s.ok)) throw new Error('generator produced an invalid definition or segment');
        const rules = f.rules.map((r, i) => ({ id: `r${i}`, ...r }));
        const state = validateFlagState({ ...f, rules }, definition.value, new Set(['s1', 's2']));
        fc.pre(state.ok);
        if (!state.ok) return;
        const config: FlagConfig = { ...definition.value, state: { ...state.value, version: 1 } };
        const env = compileEnvironment({ environment: 'e', version: 1, flags: [config], segments: [s1, s2] as Segment[] });
        expect(env.flags.get('flag')?.error).toBeNull();
        const d = evaluate(env, 'flag', context as never, def);
        if (d.reason.kind === 'ERROR') {
          expect(d.value).toBe(def);
          expect(d.reason.errorCode).toBe('WRONG_TYPE');
        } else {
          expect(['a', 'b', 'c']).toContain(d.variant);
        }
        const all = evaluateAll(env, context as never);
        expect(Object.keys(all)).toEqual(['flag']);
      }),
      { numRuns: 1500 },
    );
  });

  it('for snapshots that are not even shaped like snapshots', () => {
    fc.assert(
      fc.property(fc.anything(), fc.anything(), (snapshot, context) => {
        const env = compileEnvironment(snapshot as never);
        for (const key of env.flags.keys()) evaluate(env, key, context as never, false);
        evaluate(env, 'x', context as never, false);
        evaluateAll(env, context as never);
      }),
      { numRuns: 500 },
    );
  });

  it('when a context attribute throws on access', () => {
    const env = compileEnvironment({
      environment: 'e',
      version: 1,
      segments: [],
      flags: [
        {
          key: 'f',
          kind: 'boolean',
          variants: [
            { key: 'on', value: true },
            { key: 'off', value: false },
          ],
          state: {
            enabled: true,
            offVariant: 'off',
            targets: [],
            version: 1,
            fallthrough: { variant: 'off' },
            rules: [{ id: 'r', conditions: [{ attribute: 'plan', op: 'exists' }], serve: { variant: 'on' } }],
          },
        },
      ],
    });
    const hostile = Object.defineProperty({ key: 'u' }, 'plan', {
      get() {
        throw new Error('boom');
      },
    });
    expect(evaluate(env, 'f', hostile, true)).toEqual({ value: true, reason: { kind: 'ERROR', errorCode: 'GENERAL' }, errorCode: 'GENERAL' });
  });
});
