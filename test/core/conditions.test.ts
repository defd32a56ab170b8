import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileAttributeCondition } from '../../sdk/core/compile.js';
import type { AttributeCondition, AttributeScalar, EvaluationContext } from '../../sdk/core/index.js';

/** CONTRACT §1 restated plainly: the reference the compiled (specialized) predicates must agree with. */
function reference(c: AttributeCondition, ctx: Record<string, unknown>): boolean {
  const v = Object.hasOwn(ctx, c.attribute) ? ctx[c.attribute] : undefined;
  const values = c.values ?? [];
  const scalar = (x: unknown): x is AttributeScalar => typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean';
  const matches = (x: AttributeScalar): boolean =>
    values.some((value) => {
      switch (c.op) {
        case 'in':
          return x === value;
        case 'startsWith':
          return typeof x === 'string' && x.startsWith(value as string);
        case 'endsWith':
          return typeof x === 'string' && x.endsWith(value as string);
        case 'contains':
          return typeof x === 'string' && x.includes(value as string);
        case 'lt':
          return typeof x === 'number' && x < (value as number);
        case 'lte':
          return typeof x === 'number' && x <= (value as number);
        case 'gt':
          return typeof x === 'number' && x > (value as number);
        case 'gte':
          return typeof x === 'number' && x >= (value as number);
        default:
          throw new Error(`not covered: ${c.op}`);
      }
    });
  const negate = c.negate === true;
  if (scalar(v)) return matches(v) !== negate;
  if (Array.isArray(v)) return v.some((e) => scalar(e) && matches(e)) ? !negate : negate;
  return false;
}

const str = fc.string({ unit: fc.constantFrom('a', 'b', '@', 'é'), maxLength: 4 });
const num = fc.constantFrom(-1, 0, 0.5, 1, 2, 1e9);
const scalar = fc.oneof(str, num, fc.boolean());
const condition: fc.Arbitrary<AttributeCondition> = fc
  .oneof(
    fc.record({ op: fc.constant('in' as const), values: fc.array(scalar, { minLength: 1, maxLength: 3 }) }),
    fc.record({
      op: fc.constantFrom('startsWith' as const, 'endsWith' as const, 'contains' as const),
      values: fc.array(str, { minLength: 1, maxLength: 2 }),
    }),
    fc.record({
      op: fc.constantFrom('lt' as const, 'lte' as const, 'gt' as const, 'gte' as const),
      values: fc.array(num, { minLength: 1, maxLength: 3 }),
    }),
  )
  .chain((c) => fc.boolean().map((negate) => ({ attribute: 'a', ...c, negate })));
const attributeValue = fc.oneof(
  scalar,
  fc.array(fc.oneof(scalar, fc.constant(null), fc.object()), { maxLength: 3 }),
  fc.constant(null),
  fc.constant(undefined),
  fc.object(),
  fc.func(fc.boolean()),
);

describe('compiled attribute conditions', () => {
  it('agree with the contract restated plainly, for every operator shape, negation and attribute type', () => {
    fc.assert(
      fc.property(condition, attributeValue, (c, value) => {
        const ctx = value === undefined ? {} : { a: value };
        expect(compileAttributeCondition(c)(ctx as EvaluationContext)).toBe(reference(c, ctx));
      }),
      { numRuns: 5000 },
    );
  });
});
