import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyTrustedChanges, compileTrustedEnvironment, evaluate, evaluateAll, type FlagConfig } from '../../sdk/core/index.js';

const good: FlagConfig = {
  key: 'f',
  kind: 'boolean',
  variants: [
    { key: 'on', value: true },
    { key: 'off', value: false },
  ],
  state: {
    enabled: true,
    offVariant: 'off',
    targets: [{ variant: 'on', keys: ['vip'] }],
    rules: [
      {
        id: 'r',
        conditions: [{ attribute: 'plan', op: 'in', values: ['pro'] }],
        serve: {
          rollout: {
            weights: [
              { variant: 'on', percent: 50 },
              { variant: 'off', percent: 50 },
            ],
          },
        },
      },
    ],
    fallthrough: { variant: 'off' },
    version: 3,
  },
};

/** Structural breaks the server's validator would refuse; the SDK's trusted compile must notice each one itself. */
const breaks: [string, (f: any) => void][] = [
  ['an unknown offVariant', (f) => (f.state.offVariant = 'nope')],
  ['an unknown target variant', (f) => (f.state.targets[0].variant = 'nope')],
  ['an unknown operator', (f) => (f.state.rules[0].conditions[0].op = 'teleports')],
  ['a condition without attribute', (f) => delete f.state.rules[0].conditions[0].attribute],
  ['object condition values', (f) => (f.state.rules[0].conditions[0].values = [{}])],
  ['string values for lt', (f) => (f.state.rules[0].conditions[0] = { attribute: 'n', op: 'lt', values: ['3'] })],
  ['a weight without percent', (f) => delete f.state.rules[0].serve.rollout.weights[0].percent],
  ['weights that are not an array', (f) => (f.state.rules[0].serve.rollout.weights = 'half')],
  ['a rollout weight on an unknown variant', (f) => (f.state.rules[0].serve.rollout.weights[1].variant = 'x')],
  ['enabled as a string', (f) => (f.state.enabled = 'yes')],
  ['a variant value of the wrong kind', (f) => (f.variants[0].value = 'true')],
  ['no variants', (f) => (f.variants = [])],
  ['rules that are not an array', (f) => (f.state.rules = {})],
  ['a missing segment', (f) => (f.state.rules[0].conditions[0] = { segment: 'gone' })],
  ['no state', (f) => delete f.state],
];

describe('trusted compile (what the SDK runs on flags from the server or a bootstrap)', () => {
  it('evaluates a well-formed flag', () => {
    const env = compileTrustedEnvironment({ environment: 'e', version: 1, flags: [good], segments: [] });
    expect(env.flags.get('f')?.error).toBeNull();
    expect(evaluate(env, 'f', { key: 'vip' }, false)).toMatchObject({ value: true, reason: { kind: 'TARGET_MATCH' } });
    expect(evaluate(env, 'f', { key: 'x' }, false)).toMatchObject({ value: false, reason: { kind: 'FALLTHROUGH' } });
  });

  it.each(breaks)('serves a flag with %s as MALFORMED_FLAG, and the others normally', (_name, mutate) => {
    const broken = structuredClone(good) as any;
    broken.key = 'broken';
    mutate(broken);
    const env = compileTrustedEnvironment({ environment: 'e', version: 1, flags: [good, broken], segments: [] });
    expect(env.flags.get('broken')?.error).toEqual(expect.any(String));
    expect(evaluate(env, 'broken', { key: 'vip', plan: 'pro', n: 1 }, false)).toMatchObject({
      value: false,
      reason: { kind: 'ERROR', errorCode: 'MALFORMED_FLAG' },
    });
    expect(evaluate(env, 'f', { key: 'vip' }, false).value).toBe(true);
  });

  it('a malformed upsert in a delta becomes MALFORMED_FLAG without touching other flags', () => {
    const env = compileTrustedEnvironment({ environment: 'e', version: 1, flags: [good], segments: [] });
    const next = applyTrustedChanges(
      env,
      [{ type: 'flag.upsert', flag: { ...good, key: 'g', state: { ...good.state, fallthrough: { variant: 'x' } } } }],
      2,
    );
    expect(evaluate(next, 'g', { key: 'a' }, false).errorCode).toBe('MALFORMED_FLAG');
    expect(next.flags.get('f')).toBe(env.flags.get('f'));
    expect(next.version).toBe(2);
  });

  it('never throws, whatever the snapshot and context', () => {
    fc.assert(
      fc.property(fc.anything(), fc.anything(), fc.array(fc.anything(), { maxLength: 3 }), (snapshot, context, flags) => {
        const env = compileTrustedEnvironment(snapshot as never);
        const env2 = compileTrustedEnvironment({ environment: 'e', version: 1, flags: flags as never, segments: flags as never });
        for (const e of [env, env2]) {
          for (const key of e.flags.keys()) evaluate(e, key, context as never, false);
          evaluateAll(e, context as never);
        }
        applyTrustedChanges(env2, flags as never, 2);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps the validator out of the browser bundle', () => {
    const out = execFileSync(process.execPath, [join(import.meta.dirname, '../../sdk/scripts/bundle.mjs'), '--json'], { encoding: 'utf8' });
    const report = JSON.parse(out) as { sources: { path: string }[] };
    const paths = report.sources.map((s) => s.path);
    expect(paths).toContain('sdk/core/compile.ts');
    expect(paths.filter((p) => /validate|compile-checked/.test(p))).toEqual([]);
  });
});
