/**
 * Evaluation (CONTRACT §2 and §12, fixed order): unknown flag → default (ERROR/FLAG_NOT_FOUND); the caller's default
 * of another kind → default (ERROR/WRONG_TYPE); a flag that could not compile → default (ERROR/MALFORMED_FLAG);
 * disabled → offVariant (OFF); a prerequisite that fails → offVariant (PREREQUISITE_FAILED, `prerequisiteKey`);
 * context key in targets → TARGET_MATCH; first matching rule → RULE_MATCH; otherwise FALLTHROUGH. Never throws.
 */
import { allHold, isScalar, type CompiledEnvironment, type CompiledFlag, type CompiledPrerequisite, type CompiledServe } from './compile.js';
import type { ErrorCode, EvaluationContext, EvaluationDetail, FlagKind, JsonValue } from './types.js';

/** Every reason kind, in a fixed order (the SDK's counters index them by it). */
export const REASON_KINDS = ['OFF', 'TARGET_MATCH', 'RULE_MATCH', 'FALLTHROUGH', 'ERROR', 'PREREQUISITE_FAILED'] as const;

/**
 * Told of each prerequisite evaluated on the way to a result (nested ones first), with the required flag and what it
 * served: the SDK counts these as evaluations of that flag.
 */
export type PrerequisiteListener = (flag: CompiledFlag, detail: EvaluationDetail) => void;

/**
 * How deep prerequisites are followed. Compiled prerequisites cannot form a cycle (see `CompiledPrerequisite`); this
 * bounds the work of a pathological chain: beyond it, a prerequisite fails.
 */
export const MAX_PREREQUISITE_DEPTH = 64;

const EMPTY_CONTEXT: EvaluationContext = Object.freeze({});

/** Whether a flag of `kind` may answer a caller whose default is `defaultValue` (its JS type decides). */
export function kindAccepts(kind: FlagKind, defaultValue: unknown): boolean {
  const t = typeof defaultValue;
  // An object (or array, or null) default expects json; a json flag accepts any JSON-typed default.
  return t === 'object' ? kind === 'json' : isScalar(defaultValue) && (kind === t || kind === 'json');
}

/** The caller's default with reason ERROR / `errorCode`. */
export function errorDetail<T>(value: T, errorCode: ErrorCode): EvaluationDetail<T> {
  return { value, reason: { kind: 'ERROR', errorCode }, errorCode };
}

/** A rule's or the fallthrough's serve: its variant, or the context's place in its rollout. */
function serve(flag: CompiledFlag, s: CompiledServe, ctx: EvaluationContext): EvaluationDetail {
  const r = s._rollout;
  if (r === null) return s._detail;
  const v = ctx[r._bucketBy];
  // Without the bucketBy attribute the hash never places the context: offVariant, `bucketByMissing`.
  if (!isScalar(v)) return s._detail;
  const b = r._bucketer.bucket(String(v));
  let i = 0;
  while (b >= r._ends[i]!) i++;
  const vi = r._variants[i]!;
  const { ruleId, ruleIndex } = s._base;
  // Literals, not a spread of `base`: copying an object costs more than the rest of the evaluation.
  return {
    value: flag._values[vi]!,
    variant: flag.variantKeys[vi]!,
    reason:
      ruleId === undefined
        ? { kind: 'FALLTHROUGH', inRollout: true, bucket: b }
        : { kind: 'RULE_MATCH', ruleId, ruleIndex, inRollout: true, bucket: b },
  };
}

/**
 * Whether a prerequisite holds for `ctx`: its flag exists, can be evaluated, is not killed (so killing a flag always
 * turns off the flags requiring it, whatever variants they accept) and serves one of the listed variants.
 */
function holds(p: CompiledPrerequisite, ctx: EvaluationContext, depth: number, on: PrerequisiteListener | undefined): boolean {
  const parent = p._flag;
  if (parent === null || depth >= MAX_PREREQUISITE_DEPTH) return false;
  if (parent.error !== null) {
    on?.(parent, errorDetail(null, 'MALFORMED_FLAG'));
    return false;
  }
  const d = resolve(parent, ctx, depth + 1, on);
  on?.(parent, d);
  return parent._enabled && p._variants.includes(d.variant!);
}

function resolve(flag: CompiledFlag, ctx: EvaluationContext, depth: number, on: PrerequisiteListener | undefined): EvaluationDetail {
  if (!flag._enabled) return flag._offDetail!;
  const pre = flag._prereqs;
  for (let i = 0; i < pre.length; i++) if (!holds(pre[i]!, ctx, depth, on)) return pre[i]!._failed;
  const key = ctx.key;
  if (typeof key === 'string' && flag._targets.size > 0) {
    const t = flag._targets.get(key);
    if (t !== undefined) return flag._targetDetails[t]!;
  }
  const rules = flag._rules;
  for (let i = 0; i < rules.length; i++) if (allHold(rules[i]!._conditions, ctx)) return serve(flag, rules[i]!._serve, ctx);
  return serve(flag, flag._fallthrough!, ctx);
}

/**
 * Evaluates a compiled flag (see `evaluate`). `anyKind` skips the type check (for `evaluateAll`); `onPrerequisite`
 * hears each prerequisite evaluated. Details without a bucket are shared frozen objects.
 */
export function evaluateFlag<T>(
  flag: CompiledFlag,
  context: EvaluationContext,
  defaultValue: T,
  anyKind = false,
  onPrerequisite?: PrerequisiteListener,
): EvaluationDetail<T> {
  if (!anyKind && !kindAccepts(flag.kind, defaultValue)) return errorDetail(defaultValue, 'WRONG_TYPE');
  if (flag.error !== null) return errorDetail(defaultValue, 'MALFORMED_FLAG');
  try {
    return resolve(flag, typeof context === 'object' && context !== null ? context : EMPTY_CONTEXT, 0, onPrerequisite) as EvaluationDetail<T>;
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
  for (const [key, flag] of env?.flags ?? []) out[key] = evaluateFlag<JsonValue>(flag, context, null, true);
  return out;
}
