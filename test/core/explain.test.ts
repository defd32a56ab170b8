/**
 * The explainer (sdk/core/explain.ts) over every golden evaluation case: its result is evaluation's, and its trace
 * names the step that decided, the rule and bucket evaluation reported, and a condition list whose results agree.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bucket, compileEnvironment, evaluateFlag, explainFlag, type EnvironmentSnapshot, type EvaluationContext } from '../../sdk/core/index.js';

interface Case {
  name: string;
  flag: string;
  context: EvaluationContext;
  default: unknown;
  expect: { value: unknown; variant?: string; reason: { kind: string; ruleIndex?: number; bucket?: number; prerequisiteKey?: string } };
}
const file = JSON.parse(readFileSync(join(import.meta.dirname, '../cases/evaluation.json'), 'utf8')) as {
  environment: EnvironmentSnapshot;
  cases: Case[];
};
const env = compileEnvironment(file.environment);

const STEP: Record<string, string> = {
  OFF: 'off',
  PREREQUISITE_FAILED: 'prerequisite',
  TARGET_MATCH: 'target',
  RULE_MATCH: 'rule',
  FALLTHROUGH: 'fallthrough',
  ERROR: 'error',
};

describe('explainFlag', () => {
  // Cases whose default is of another kind (WRONG_TYPE) or whose flag does not exist are about the caller, not the flag.
  const flagCases = file.cases.filter(
    (c) => env.flags.has(c.flag) && !(c.expect.reason.kind === 'ERROR' && (c.expect as { errorCode?: string }).errorCode === 'WRONG_TYPE'),
  );

  it.each(flagCases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const flag = env.flags.get(c.flag)!;
    const x = explainFlag(flag, c.context);
    // The decision is evaluation's own.
    expect(x.result).toEqual(evaluateFlag(flag, c.context, null, true));
    if (c.expect.reason.kind !== 'ERROR') expect(x.result).toEqual(c.expect);
    expect(x.decidedBy).toBe(STEP[c.expect.reason.kind]);
    if (c.expect.reason.kind === 'RULE_MATCH') {
      const rule = x.rules[c.expect.reason.ruleIndex!]!;
      expect(rule.decided).toBe(true);
      expect(rule.conditions.every((k) => k.holds)).toBe(true);
      // Every rule before it failed on at least one condition.
      for (const earlier of x.rules.slice(0, c.expect.reason.ruleIndex)) expect(earlier.matches).toBe(false);
      expect(rule.serve.variant).toBe(c.expect.variant);
      if (c.expect.reason.bucket !== undefined) expect(rule.serve.rollout?.bucket).toBe(c.expect.reason.bucket);
    }
    if (c.expect.reason.kind === 'FALLTHROUGH') {
      expect(x.rules.every((r) => !r.matches)).toBe(true);
      expect(x.fallthrough.variant).toBe(c.expect.variant);
      if (c.expect.reason.bucket !== undefined) expect(x.fallthrough.rollout?.bucket).toBe(c.expect.reason.bucket);
    }
    if (c.expect.reason.kind === 'PREREQUISITE_FAILED') {
      const failed = x.prerequisites.find((p) => !p.holds);
      expect(failed?.flag).toBe(c.expect.reason.prerequisiteKey);
    }
    if (c.expect.reason.kind === 'TARGET_MATCH') expect(x.target?.variant).toBe(c.expect.variant);
    if (x.malformed) expect(x.decidedBy).toBe('error');
  });

  it('shows a rollout as bucket ranges, and where the bucket falls (CONTRACT §3)', () => {
    const snapshot: EnvironmentSnapshot = {
      environment: 'e',
      version: 1,
      segments: [],
      flags: [
        {
          key: 'split',
          kind: 'string',
          variants: [
            { key: 'a', value: 'a' },
            { key: 'b', value: 'b' },
            { key: 'c', value: 'c' },
          ],
          state: {
            enabled: true,
            offVariant: 'a',
            targets: [],
            rules: [{ id: 'pro', conditions: [{ attribute: 'plan', op: 'in', values: ['pro'] }], serve: { variant: 'c' } }],
            fallthrough: {
              rollout: {
                weights: [
                  { variant: 'a', percent: 12.5 },
                  { variant: 'b', percent: 0 },
                  { variant: 'c', percent: 87.5 },
                ],
                bucketBy: 'org',
              },
            },
            version: 1,
          },
        },
      ],
    };
    const flag = compileEnvironment(snapshot).flags.get('split')!;
    const x = explainFlag(flag, { key: 'u1', org: 'acme', plan: 'free' });
    expect(x.rules[0]).toMatchObject({ id: 'pro', matches: false, decided: false, conditions: [{ holds: false, actual: 'free' }] });
    expect(x.fallthrough.rollout?.ranges).toEqual([
      { variant: 'a', fromBucket: 0, toBucket: 12_500, percent: 12.5 },
      { variant: 'c', fromBucket: 12_500, toBucket: 100_000, percent: 87.5 },
    ]);
    const b = bucket('split', 'acme');
    expect(x.fallthrough.rollout).toMatchObject({ bucketBy: 'org', salt: 'split', value: 'acme', bucket: b, variant: b < 12_500 ? 'a' : 'c' });
    expect(x.result.variant).toBe(b < 12_500 ? 'a' : 'c');
    // Without the bucketBy attribute: no bucket, and what evaluation serves then.
    const missing = explainFlag(flag, { key: 'u1' });
    expect(missing.fallthrough.rollout?.bucket).toBeUndefined();
    expect(missing.fallthrough.variant).toBe(missing.result.variant);
  });

  it('never throws on a hostile context', () => {
    const flag = env.flags.get('op-in')!;
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('boom');
        },
      },
    ) as EvaluationContext;
    expect(() => explainFlag(flag, hostile)).not.toThrow();
    expect(explainFlag(flag, hostile).result.reason.kind).toBe('ERROR');
  });
});
