import { describe, expect, it } from 'vitest';
import { defaultFlagState, validateFlagDefinition, validateFlagState, validateSegment, type FlagDefinition } from '../../sdk/core/index.js';

const flag: FlagDefinition = {
  key: 'checkout',
  kind: 'string',
  variants: [
    { key: 'old', value: 'old' },
    { key: 'new', value: 'new' },
  ],
};
const segments = new Set(['beta']);
const okState = { enabled: true, offVariant: 'old', targets: [], rules: [], fallthrough: { variant: 'new' } };
const rule = (conditions: unknown[], serve: unknown = { variant: 'new' }, id = 'r1') => ({ id, conditions, serve });
const withRules = (...rules: unknown[]) => ({ ...okState, rules });

function issuesOf(r: { ok: boolean; issues?: { path: string; message: string }[] }) {
  expect(r.ok).toBe(false);
  return r.issues ?? [];
}

describe('validateFlagDefinition', () => {
  it('gives a boolean flag without variants on=true and off=false', () => {
    expect(validateFlagDefinition({ key: 'dark-mode', kind: 'boolean' })).toEqual({
      ok: true,
      value: {
        key: 'dark-mode',
        kind: 'boolean',
        variants: [
          { key: 'on', value: true },
          { key: 'off', value: false },
        ],
      },
    });
  });

  it('keeps known fields and drops unknown ones', () => {
    const r = validateFlagDefinition({ ...flag, description: 'd', tags: ['a'], archived: false, createdAt: 1 });
    expect(r).toEqual({ ok: true, value: { ...flag, description: 'd', tags: ['a'], archived: false } });
  });

  it.each([
    ['not an object', 'x', '/', 'must be an object'],
    ['key missing', { kind: 'boolean' }, '/key', 'required'],
    ['key with capitals', { key: 'Checkout', kind: 'boolean' }, '/key', 'must match'],
    ['key too long', { key: 'a'.repeat(129), kind: 'boolean' }, '/key', 'must match'],
    ['unknown kind', { key: 'k', kind: 'text' }, '/kind', 'must be one of'],
    ['string flag without variants', { key: 'k', kind: 'string' }, '/variants', 'required'],
    ['empty variants', { key: 'k', kind: 'string', variants: [] }, '/variants', 'at least one'],
    [
      'duplicate variant',
      {
        key: 'k',
        kind: 'boolean',
        variants: [
          { key: 'on', value: true },
          { key: 'on', value: false },
        ],
      },
      '/variants/1/key',
      'duplicates',
    ],
    ['variant without value', { key: 'k', kind: 'boolean', variants: [{ key: 'on' }] }, '/variants/0/value', 'required'],
    ['boolean value on a string flag', { key: 'k', kind: 'string', variants: [{ key: 'a', value: true }] }, '/variants/0/value', 'must be a string'],
    ['string value on a number flag', { key: 'k', kind: 'number', variants: [{ key: 'a', value: '3' }] }, '/variants/0/value', 'finite number'],
    ['non-finite number', { key: 'k', kind: 'number', variants: [{ key: 'a', value: Infinity }] }, '/variants/0/value', 'finite'],
    [
      'non-JSON value on a json flag',
      { key: 'k', kind: 'json', variants: [{ key: 'a', value: { f: () => 1 } }] },
      '/variants/0/value/f',
      'JSON value',
    ],
    ['bad variant key', { key: 'k', kind: 'string', variants: [{ key: 'has space', value: 'x' }] }, '/variants/0/key', 'must match'],
    ['tags not strings', { key: 'k', kind: 'boolean', tags: [1] }, '/tags/0', 'non-empty string'],
    ['archived not boolean', { key: 'k', kind: 'boolean', archived: 'yes' }, '/archived', 'boolean'],
  ])('rejects %s at %s', (_name, input, path, message) => {
    const issues = issuesOf(validateFlagDefinition(input));
    expect(issues).toContainEqual({ path, message: expect.stringContaining(message) });
  });
});

describe('validateFlagState', () => {
  it('accepts a full state and ignores the input version', () => {
    const input = {
      ...okState,
      version: 99,
      targets: [{ variant: 'new', keys: ['u1'] }],
      rules: [
        rule([
          { attribute: 'email', op: 'endsWith', values: ['@acme.com'] },
          { segment: 'beta', negate: true },
        ]),
        rule(
          [],
          {
            rollout: {
              bucketBy: 'org',
              salt: 'ring',
              weights: [
                { variant: 'new', percent: 33.333 },
                { variant: 'old', percent: 66.667 },
              ],
            },
          },
          'r2',
        ),
      ],
    };
    const r = validateFlagState(input, flag, segments);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value).not.toHaveProperty('version');
  });

  it.each([
    ['enabled missing', { ...okState, enabled: undefined }, '/enabled', 'boolean'],
    ['unknown offVariant', { ...okState, offVariant: 'nope' }, '/offVariant', 'must name a variant'],
    ['fallthrough missing', { ...okState, fallthrough: undefined }, '/fallthrough', 'variant'],
    ['serve with both variant and rollout', { ...okState, fallthrough: { variant: 'new', rollout: {} } }, '/fallthrough', 'exactly one'],
    ['unknown served variant', { ...okState, fallthrough: { variant: 'x' } }, '/fallthrough/variant', 'unknown variant'],
    ['target with unknown variant', { ...okState, targets: [{ variant: 'x', keys: ['a'] }] }, '/targets/0/variant', 'unknown variant'],
    [
      'key targeted twice',
      {
        ...okState,
        targets: [
          { variant: 'new', keys: ['a'] },
          { variant: 'old', keys: ['a'] },
        ],
      },
      '/targets/1/keys/0',
      'already targeted',
    ],
    ['duplicate rule id', withRules(rule([]), rule([])), '/rules/1/id', 'duplicates'],
    ['rule without id', withRules({ conditions: [], serve: { variant: 'new' } }), '/rules/0/id', 'required'],
    ['unknown operator', withRules(rule([{ attribute: 'a', op: 'equals', values: ['x'] }])), '/rules/0/conditions/0/op', 'unknown operator'],
    ['unknown segment', withRules(rule([{ segment: 'gamma' }])), '/rules/0/conditions/0/segment', 'unknown segment'],
    ['segment and attribute together', withRules(rule([{ segment: 'beta', attribute: 'a', op: 'exists' }])), '/rules/0/conditions/0', 'not both'],
    ['missing attribute name', withRules(rule([{ op: 'exists' }])), '/rules/0/conditions/0/attribute', 'required'],
    ['no values', withRules(rule([{ attribute: 'a', op: 'in' }])), '/rules/0/conditions/0/values', 'non-empty array'],
    ['values on exists', withRules(rule([{ attribute: 'a', op: 'exists', values: ['x'] }])), '/rules/0/conditions/0/values', 'no values'],
    ['object in "in"', withRules(rule([{ attribute: 'a', op: 'in', values: ['x', {}] }])), '/rules/0/conditions/0/values/1', '"in"'],
    [
      'number for startsWith',
      withRules(rule([{ attribute: 'a', op: 'startsWith', values: [1] }])),
      '/rules/0/conditions/0/values/0',
      'must be a string',
    ],
    ['string for lt', withRules(rule([{ attribute: 'a', op: 'lt', values: ['3'] }])), '/rules/0/conditions/0/values/0', 'finite number'],
    [
      'bad regular expression',
      withRules(rule([{ attribute: 'a', op: 'matches', values: ['(a'] }])),
      '/rules/0/conditions/0/values/0',
      'regular expression',
    ],
    [
      'too many patterns',
      withRules(rule([{ attribute: 'a', op: 'matches', values: Array.from({ length: 21 }, (_, i) => `p${i}`) }])),
      '/rules/0/conditions/0/values',
      'at most 20 patterns',
    ],
    ['backreference', withRules(rule([{ attribute: 'a', op: 'matches', values: ['(a)\\1'] }])), '/rules/0/conditions/0/values/0', 'backreferences'],
    ['bad semver', withRules(rule([{ attribute: 'v', op: 'semverLt', values: ['1.2'] }])), '/rules/0/conditions/0/values/0', 'semantic version'],
    [
      'semver with leading zero',
      withRules(rule([{ attribute: 'v', op: 'semverEq', values: ['01.2.3'] }])),
      '/rules/0/conditions/0/values/0',
      'semantic version',
    ],
    ['bad date', withRules(rule([{ attribute: 'd', op: 'before', values: ['2024-02-30T00:00:00Z'] }])), '/rules/0/conditions/0/values/0', 'ISO-8601'],
    [
      'zone-less date-time',
      withRules(rule([{ attribute: 'd', op: 'after', values: ['2024-01-01T10:00:00'] }])),
      '/rules/0/conditions/0/values/0',
      'ISO-8601',
    ],
    ['boolean date', withRules(rule([{ attribute: 'd', op: 'after', values: [true] }])), '/rules/0/conditions/0/values/0', 'ISO-8601'],
    ['negate not boolean', withRules(rule([{ attribute: 'a', op: 'exists', negate: 'yes' }])), '/rules/0/conditions/0/negate', 'boolean'],
    [
      'percents not summing to 100',
      {
        ...okState,
        fallthrough: {
          rollout: {
            weights: [
              { variant: 'new', percent: 50 },
              { variant: 'old', percent: 49 },
            ],
          },
        },
      },
      '/fallthrough/rollout/weights',
      'sum to 100',
    ],
    [
      'more than three decimals',
      {
        ...okState,
        fallthrough: {
          rollout: {
            weights: [
              { variant: 'new', percent: 50.0005 },
              { variant: 'old', percent: 49.9995 },
            ],
          },
        },
      },
      '/fallthrough/rollout/weights/0/percent',
      'three decimals',
    ],
    [
      'negative percent',
      {
        ...okState,
        fallthrough: {
          rollout: {
            weights: [
              { variant: 'new', percent: -1 },
              { variant: 'old', percent: 101 },
            ],
          },
        },
      },
      '/fallthrough/rollout/weights/0/percent',
      'from 0 to 100',
    ],
    [
      'variant twice in weights',
      {
        ...okState,
        fallthrough: {
          rollout: {
            weights: [
              { variant: 'new', percent: 50 },
              { variant: 'new', percent: 50 },
            ],
          },
        },
      },
      '/fallthrough/rollout/weights/1/variant',
      'twice',
    ],
    [
      'unknown variant in weights',
      withRules(rule([], { rollout: { weights: [{ variant: 'zzz', percent: 100 }] } })),
      '/rules/0/serve/rollout/weights/0/variant',
      'unknown variant',
    ],
    [
      'empty bucketBy',
      { ...okState, fallthrough: { rollout: { bucketBy: '', weights: [{ variant: 'new', percent: 100 }] } } },
      '/fallthrough/rollout/bucketBy',
      'empty',
    ],
  ])('rejects %s at %s', (_name, input, path, message) => {
    const issues = issuesOf(validateFlagState(input, flag, segments));
    expect(issues).toContainEqual({ path, message: expect.stringContaining(message) });
  });

  it('reports every issue, not just the first', () => {
    const issues = issuesOf(
      validateFlagState({ enabled: 1, offVariant: 'x', rules: [rule([{ attribute: 'a', op: 'nope' }]), rule([])], fallthrough: {} }, flag, segments),
    );
    expect(issues.map((i) => i.path)).toEqual(['/enabled', '/offVariant', '/rules/0/conditions/0/op', '/rules/1/id', '/fallthrough']);
  });
});

describe('validateSegment', () => {
  it('accepts a segment and fills in empty lists', () => {
    expect(validateSegment({ key: 'beta', rules: [{ conditions: [{ attribute: 'country', op: 'in', values: ['NL'] }] }] })).toEqual({
      ok: true,
      value: { key: 'beta', included: [], excluded: [], rules: [{ conditions: [{ attribute: 'country', op: 'in', values: ['NL'] }] }] },
    });
  });

  it.each([
    ['bad key', { key: 'Beta' }, '/key', 'must match'],
    ['included not strings', { key: 'b', included: ['a', 2] }, '/included/1', 'non-empty string'],
    ['excluded not an array', { key: 'b', excluded: 'a' }, '/excluded', 'array'],
    [
      'segment condition inside a segment',
      { key: 'b', rules: [{ conditions: [{ segment: 'other' }] }] },
      '/rules/0/conditions/0/segment',
      'may not reference',
    ],
    [
      'unknown operator',
      { key: 'b', rules: [{ conditions: [{ attribute: 'a', op: 'like', values: ['x'] }] }] },
      '/rules/0/conditions/0/op',
      'unknown operator',
    ],
    [
      'duplicate rule id',
      {
        key: 'b',
        rules: [
          { id: 'x', conditions: [] },
          { id: 'x', conditions: [] },
        ],
      },
      '/rules/1/id',
      'duplicates',
    ],
  ])('rejects %s at %s', (_name, input, path, message) => {
    const issues = issuesOf(validateSegment(input));
    expect(issues).toContainEqual({ path, message: expect.stringContaining(message) });
  });
});

describe('defaultFlagState', () => {
  it('is disabled, serves off when off, and the first variant when enabled', () => {
    const boolean = validateFlagDefinition({ key: 'b', kind: 'boolean' });
    if (!boolean.ok) throw new Error('fixture');
    expect(defaultFlagState(boolean.value)).toEqual({ enabled: false, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } });
    expect(defaultFlagState(flag)).toMatchObject({ offVariant: 'new', fallthrough: { variant: 'old' } });
    expect(validateFlagState(defaultFlagState(flag), flag, new Set()).ok).toBe(true);
  });
});
