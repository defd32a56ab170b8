/**
 * server/sdk/evaluate-json.ts writes `POST /sdk/v1/evaluate`'s answer without JSON.stringify: it must produce the
 * bytes JSON.stringify would, for every result the core can give (the golden vectors cover every reason, error code
 * and value kind) and for any detail shape (fast-check), including values with characters that need escaping.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileEnvironment, evaluate, evaluateFlag, type EnvironmentSnapshot, type EvaluationContext, type EvaluationDetail, type JsonValue } from '../../sdk/core/index.js';
import { detailJson, EvaluateAnswer, evaluateAnswerJson } from '../../server/sdk/evaluate-json.js';

const file = JSON.parse(readFileSync(join(import.meta.dirname, '../cases/evaluation.json'), 'utf8')) as {
  environment: EnvironmentSnapshot;
  cases: { flag: string; context: EvaluationContext; default: unknown }[];
};

describe('evaluate answer JSON', () => {
  it('equals JSON.stringify for every golden case, byte for byte', () => {
    const env = compileEnvironment(file.environment);
    const details = file.cases.map((c) => evaluate(env, c.flag, c.context, c.default as JsonValue));
    expect(new Set(details.map((d) => d.reason.kind)).size).toBe(5);
    for (const detail of details) expect(detailJson(detail)).toBe(JSON.stringify(detail));
    // Evaluating twice reuses the cached JSON of object values: still the same bytes.
    for (const detail of details) expect(detailJson(detail)).toBe(JSON.stringify(detail));
  });

  it('builds the whole answer as JSON.stringify would', () => {
    const env = compileEnvironment(file.environment);
    const answer = new EvaluateAnswer('prod "eu"', 42);
    const flags: Record<string, EvaluationDetail> = {};
    for (const [key, flag] of env.flags) {
      const detail = evaluate(env, key, { key: 'user-1', country: 'NL' }, null);
      answer.add(flag.key, detail);
      flags[key] = detail;
    }
    expect(answer.finish()).toBe(JSON.stringify({ environment: 'prod "eu"', version: 42, flags }));
    expect(new EvaluateAnswer('e', 1).finish()).toBe('{"environment":"e","version":1,"flags":{}}');
  });

  it('a whole answer equals JSON.stringify of the evaluated flags, for any context, request after request (fast-check)', () => {
    const env = compileEnvironment(file.environment);
    const attrs = fc.record(
      {
        key: fc.oneof(fc.constantFrom('vip', 'user-1', 'u-staff', 'ü'), fc.string()),
        country: fc.constantFrom('NL', 'DE', 'US'),
        email: fc.constantFrom('a@acme.com', 'b@example.org'),
        appVersion: fc.constantFrom('1.0.0', '4.2.0', '2.0.0-rc.1'),
        plan: fc.constantFrom('pro', 'free'),
        age: fc.integer({ min: 0, max: 120 }),
      },
      { requiredKeys: ['key'] },
    );
    const keys = fc.option(fc.array(fc.constantFrom(...[...env.flags.keys()], 'nope', '42'), { maxLength: 6 }), { nil: undefined });
    fc.assert(
      fc.property(attrs, keys, (context, requested) => {
        const flags: Record<string, EvaluationDetail> = {};
        for (const key of requested ?? env.flags.keys()) {
          const flag = env.flags.get(key);
          // As the route evaluates: any kind of a known flag (no caller default to match), FLAG_NOT_FOUND otherwise.
          flags[key] ??= flag ? evaluateFlag(flag, context as EvaluationContext, null, true) : evaluate(env, key, context as EvaluationContext, null);
        }
        const expected = JSON.parse(JSON.stringify({ environment: 'production', version: env.version, flags }));
        const text = evaluateAnswerJson(env, 'production', context as EvaluationContext, requested);
        expect(JSON.parse(text)).toEqual(expected);
        // Byte for byte too, whenever no key looks like an array index (JSON.stringify puts those first).
        if (!Object.keys(flags).some((k) => /^\d+$/.test(k))) expect(text).toBe(JSON.stringify({ environment: 'production', version: env.version, flags }));
      }),
      { numRuns: 1500 },
    );
  });

  it('equals JSON.stringify for any detail shape and value (fast-check)', () => {
    const reason = fc.record(
      {
        kind: fc.constantFrom('OFF', 'TARGET_MATCH', 'RULE_MATCH', 'FALLTHROUGH', 'ERROR' as const),
        ruleId: fc.string(),
        ruleIndex: fc.nat(),
        inRollout: fc.constant(true as const),
        bucket: fc.integer({ min: 0, max: 99_999 }),
        bucketByMissing: fc.constant(true as const),
        errorCode: fc.constantFrom('FLAG_NOT_FOUND', 'WRONG_TYPE', 'MALFORMED_FLAG', 'NOT_READY', 'GENERAL' as const),
      },
      { requiredKeys: ['kind'] },
    );
    const detail = fc.record(
      {
        value: fc.jsonValue() as fc.Arbitrary<JsonValue>,
        variant: fc.string(),
        reason,
        errorCode: fc.constantFrom('FLAG_NOT_FOUND', 'WRONG_TYPE' as const),
      },
      { requiredKeys: ['value', 'reason'] },
    );
    fc.assert(
      fc.property(detail, (d) => {
        expect(detailJson(d as EvaluationDetail)).toBe(JSON.stringify(d));
      }),
      { numRuns: 2000 },
    );
  });
});
