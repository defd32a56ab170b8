import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileEnvironment, evaluate, type EnvironmentSnapshot, type EvaluationContext } from '../../sdk/core/index.js';
import { Evaluator } from '../../sdk/evaluator.js';

interface Case {
  name: string;
  flag: string;
  context: EvaluationContext;
  default: unknown;
  expect: unknown;
}
const file = JSON.parse(readFileSync(join(import.meta.dirname, '../cases/evaluation.json'), 'utf8')) as {
  environment: EnvironmentSnapshot;
  cases: Case[];
};

describe('evaluation cases (test/cases/evaluation.json)', () => {
  const env = compileEnvironment(file.environment);
  const evaluator = new Evaluator(file.environment);

  it('compiles every flag but the deliberately malformed one and the members of the prerequisite cycle', () => {
    const broken = [...env.flags.values()].filter((f) => f.error !== null).map((f) => [f.key, f.error]);
    expect(broken).toEqual([
      ['malformed', expect.stringContaining('unknown segment "no-such-segment"')],
      ['pre-cycle-a', 'prerequisite cycle: pre-cycle-a → pre-cycle-b → pre-cycle-a'],
      ['pre-cycle-b', 'prerequisite cycle: pre-cycle-b → pre-cycle-a → pre-cycle-b'],
    ]);
  });

  it.each(file.cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    expect(evaluate(env, c.flag, c.context, c.default)).toEqual(c.expect);
    expect(evaluator.evaluate(c.flag, c.context, c.default)).toEqual(c.expect);
  });

  it('covers every operator, reason and error code', () => {
    const ops = new Set<string>();
    for (const f of file.environment.flags) for (const r of f.state.rules) for (const c of r.conditions) if ('op' in c) ops.add(c.op);
    expect([...ops].sort()).toEqual(
      [
        'after',
        'before',
        'contains',
        'endsWith',
        'exists',
        'gt',
        'gte',
        'in',
        'lt',
        'lte',
        'matches',
        'semverEq',
        'semverGt',
        'semverLt',
        'startsWith',
      ].sort(),
    );
    const results = file.cases.map(
      (c) => c.expect as { reason: { kind: string; errorCode?: string; bucketByMissing?: boolean; inRollout?: boolean } },
    );
    expect(new Set(results.map((r) => r.reason.kind))).toEqual(
      new Set(['OFF', 'TARGET_MATCH', 'RULE_MATCH', 'FALLTHROUGH', 'ERROR', 'PREREQUISITE_FAILED']),
    );
    expect(new Set(results.map((r) => r.reason.errorCode).filter(Boolean))).toEqual(new Set(['WRONG_TYPE', 'FLAG_NOT_FOUND', 'MALFORMED_FLAG']));
    expect(results.some((r) => r.reason.bucketByMissing)).toBe(true);
    expect(results.some((r) => r.reason.inRollout)).toBe(true);
  });
});
