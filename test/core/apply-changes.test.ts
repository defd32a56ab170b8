import { describe, expect, it } from 'vitest';
import { applyChanges, compileEnvironment, evaluate, flagKeysUsingSegment, type FlagConfig, type Segment } from '../../sdk/core/index.js';

const bool = [
  { key: 'on', value: true },
  { key: 'off', value: false },
];
function flag(key: string, conditions: FlagConfig['state']['rules'][number]['conditions'], version = 1): FlagConfig {
  return {
    key,
    kind: 'boolean',
    variants: bool,
    state: {
      enabled: true,
      offVariant: 'off',
      targets: [],
      version,
      fallthrough: { variant: 'off' },
      rules: [{ id: 'r', conditions, serve: { variant: 'on' } }],
    },
  };
}
const beta: Segment = { key: 'beta', included: ['u1'], excluded: [], rules: [] };
const base = compileEnvironment({
  environment: 'production',
  version: 10,
  segments: [beta],
  flags: [flag('uses-beta', [{ segment: 'beta' }]), flag('plain', [{ attribute: 'plan', op: 'in', values: ['pro'] }])],
});

describe('applyChanges', () => {
  it('recompiles an upserted flag and leaves the others (and the old environment) untouched', () => {
    const next = applyChanges(base, [{ type: 'flag.upsert', flag: flag('plain', [{ attribute: 'plan', op: 'in', values: ['team'] }], 2) }], 11);
    expect(next.version).toBe(11);
    expect(next.flags.get('uses-beta')).toBe(base.flags.get('uses-beta'));
    expect(next.flags.get('plain')).not.toBe(base.flags.get('plain'));
    expect(evaluate(next, 'plain', { key: 'x', plan: 'team' }, false).value).toBe(true);
    expect(evaluate(base, 'plain', { key: 'x', plan: 'team' }, false).value).toBe(false);
  });

  it('recompiles the flags that use a changed segment, and only those', () => {
    const next = applyChanges(base, [{ type: 'segment.upsert', segment: { ...beta, included: ['u2'] } }]);
    expect(flagKeysUsingSegment(base, 'beta')).toEqual(['uses-beta']);
    expect(next.flags.get('plain')).toBe(base.flags.get('plain'));
    expect(evaluate(next, 'uses-beta', { key: 'u2' }, false).value).toBe(true);
    expect(evaluate(next, 'uses-beta', { key: 'u1' }, false).value).toBe(false);
  });

  it('makes a flag malformed when its segment is deleted, and whole again when it comes back', () => {
    const gone = applyChanges(base, [{ type: 'segment.delete', key: 'beta' }]);
    expect(evaluate(gone, 'uses-beta', { key: 'u1' }, false).errorCode).toBe('MALFORMED_FLAG');
    const back = applyChanges(gone, [{ type: 'segment.upsert', segment: beta }]);
    expect(evaluate(back, 'uses-beta', { key: 'u1' }, false).value).toBe(true);
  });

  it('applies changes in order: delete then upsert, upsert then delete', () => {
    const a = applyChanges(base, [
      { type: 'flag.delete', key: 'plain' },
      { type: 'flag.upsert', flag: flag('plain', [], 3) },
    ]);
    expect(evaluate(a, 'plain', { key: 'x' }, false).value).toBe(true);
    const b = applyChanges(base, [
      { type: 'flag.upsert', flag: flag('new', []) },
      { type: 'flag.delete', key: 'new' },
    ]);
    expect(evaluate(b, 'new', { key: 'x' }, false).errorCode).toBe('FLAG_NOT_FOUND');
  });

  it('turns an invalid upsert into a malformed flag instead of throwing', () => {
    const bad = { ...flag('plain', []), state: { ...flag('plain', []).state, offVariant: 'nope' } };
    const next = applyChanges(base, [
      { type: 'flag.upsert', flag: bad },
      { type: 'segment.upsert', segment: { key: 'Bad Key' } as Segment },
    ]);
    expect(evaluate(next, 'plain', { key: 'x' }, false).errorCode).toBe('MALFORMED_FLAG');
    expect(next.flags.get('plain')?.error).toContain('/offVariant');
  });
});
