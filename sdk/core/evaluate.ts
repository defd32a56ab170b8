/**
 * Evaluation (CONTRACT §2, fixed order): unknown flag → default (ERROR/FLAG_NOT_FOUND); the caller's default of
 * another kind → default (ERROR/WRONG_TYPE); a flag that could not compile → default (ERROR/MALFORMED_FLAG);
 * disabled → offVariant (OFF); context key in targets → TARGET_MATCH; first matching rule → RULE_MATCH; otherwise
 * FALLTHROUGH. Never throws.
 */
import {
  REASON_ERROR,
  REASON_FALLTHROUGH,
  REASON_OFF,
  REASON_RULE_MATCH,
  REASON_TARGET_MATCH,
  type CompiledEnvironment,
  type CompiledFlag,
  type CompiledRollout,
} from './compile.js';
import type { ErrorCode, EvaluationContext, EvaluationDetail, FlagKind, JsonValue } from './types.js';

/**
 * What the last evaluation on this thread served, as integers, for counters that must not allocate or look
 * anything up: `variant` is the variant's index in the flag (-1 when the caller's default was returned) and
 * `reason` the index in `REASON_KINDS`. Overwritten by every evaluation; read it right after the call.
 */
export const lastOutcome = { variant: -1, reason: 0 };

const EMPTY_CONTEXT: EvaluationContext = Object.freeze({});

/** Whether a flag of `kind` may answer a caller whose default is `defaultValue` (its JS type decides). */
export function kindAccepts(kind: FlagKind, defaultValue: unknown): boolean {
  switch (typeof defaultValue) {
    case 'boolean':
      return kind === 'boolean' || kind === 'json';
    case 'string':
      return kind === 'string' || kind === 'json';
    case 'number':
      return kind === 'number' || kind === 'json';
    case 'object':
      return kind === 'json';
    default:
      return false;
  }
}

function errorDetail<T>(value: T, errorCode: ErrorCode): EvaluationDetail<T> {
  lastOutcome.variant = -1;
  lastOutcome.reason = REASON_ERROR;
  return { value, reason: { kind: 'ERROR', errorCode }, errorCode };
}

function place(
  flag: CompiledFlag,
  r: CompiledRollout,
  ctx: EvaluationContext,
  reason: 2 | 3,
  rule: { id: string; index: number } | null,
): EvaluationDetail | null {
  const v = ctx[r.bucketBy];
  let s: string;
  if (typeof v === 'string') s = v;
  else if (typeof v === 'number' || typeof v === 'boolean') s = String(v);
  else return null;
  const b = r.bucketer.bucket(s);
  const ends = r.ends;
  let i = 0;
  while (i < ends.length - 1 && b >= ends[i]!) i++;
  const vi = r.variants[i]!;
  lastOutcome.variant = vi;
  lastOutcome.reason = reason;
  const value = flag.variantValues[vi]!;
  const variant = flag.variantKeys[vi]!;
  if (rule === null) return { value, variant, reason: { kind: 'FALLTHROUGH', inRollout: true, bucket: b } };
  return { value, variant, reason: { kind: 'RULE_MATCH', ruleId: rule.id, ruleIndex: rule.index, inRollout: true, bucket: b } };
}

function resolve(flag: CompiledFlag, ctx: EvaluationContext): EvaluationDetail {
  if (!flag.enabled) {
    lastOutcome.variant = flag.offIndex;
    lastOutcome.reason = REASON_OFF;
    return flag.offDetail!;
  }
  const key = ctx.key;
  if (typeof key === 'string' && flag.targets.size > 0) {
    const t = flag.targets.get(key);
    if (t !== undefined) {
      lastOutcome.variant = t;
      lastOutcome.reason = REASON_TARGET_MATCH;
      return flag.targetDetails[t]!;
    }
  }
  const rules = flag.rules;
  for (let ri = 0; ri < rules.length; ri++) {
    const rule = rules[ri]!;
    const conds = rule.conditions;
    let ok = true;
    for (let ci = 0; ci < conds.length; ci++) {
      if (!conds[ci]!(ctx)) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    const r = rule.serve.rollout;
    if (r === null) {
      lastOutcome.variant = rule.serve.variant;
      lastOutcome.reason = REASON_RULE_MATCH;
      return rule.detail!;
    }
    const placed = place(flag, r, ctx, REASON_RULE_MATCH, rule);
    if (placed !== null) return placed;
    lastOutcome.variant = flag.offIndex;
    lastOutcome.reason = REASON_RULE_MATCH;
    return rule.missingDetail!;
  }
  const r = flag.fallthrough.rollout;
  if (r === null) {
    lastOutcome.variant = flag.fallthrough.variant;
    lastOutcome.reason = REASON_FALLTHROUGH;
    return flag.fallthroughDetail!;
  }
  const placed = place(flag, r, ctx, REASON_FALLTHROUGH, null);
  if (placed !== null) return placed;
  lastOutcome.variant = flag.offIndex;
  lastOutcome.reason = REASON_FALLTHROUGH;
  return flag.fallthroughMissingDetail!;
}

/**
 * Evaluates a compiled flag (see `evaluate`). `anyKind` skips the type check (for `evaluateAll`). Details without
 * a bucket are shared frozen objects.
 */
export function evaluateFlag<T>(flag: CompiledFlag, context: EvaluationContext, defaultValue: T, anyKind = false): EvaluationDetail<T> {
  if (!anyKind && !kindAccepts(flag.kind, defaultValue)) return errorDetail(defaultValue, 'WRONG_TYPE');
  if (flag.error !== null) return errorDetail(defaultValue, 'MALFORMED_FLAG');
  try {
    const ctx = typeof context === 'object' && context !== null ? context : EMPTY_CONTEXT;
    return resolve(flag, ctx) as EvaluationDetail<T>;
  } catch {
    // Only a hostile context (a throwing getter or proxy) gets here.
    return errorDetail(defaultValue, 'GENERAL');
  }
}

/**
 * Evaluates `flagKey` for `context`. The JS type of `defaultValue` decides the kind the caller expects (boolean,
 * string, number; an object, array or null expects json; a json flag accepts any default). Never throws.
 */
export function evaluate<T>(env: CompiledEnvironment, flagKey: string, context: EvaluationContext, defaultValue: T): EvaluationDetail<T> {
  const flag = env?.flags?.get(flagKey);
  if (flag === undefined) return errorDetail(defaultValue, 'FLAG_NOT_FOUND');
  return evaluateFlag(flag, context, defaultValue);
}

/**
 * Evaluates every flag of the environment for `context`, whatever its kind. A flag that cannot be evaluated
 * answers `value: null` with its ERROR reason. Never throws.
 */
export function evaluateAll(env: CompiledEnvironment, context: EvaluationContext): Record<string, EvaluationDetail> {
  const out: Record<string, EvaluationDetail> = {};
  const flags = env?.flags;
  if (flags === undefined) return out;
  for (const [key, flag] of flags) out[key] = evaluateFlag<JsonValue>(flag, context, null, true);
  return out;
}
