/**
 * "Why does this context get this variant?" The decision is `evaluateFlag`'s own (the result below is what it
 * returned, not a second opinion); the trace around it walks the same compiled flag in the same order (CONTRACT §2:
 * off → prerequisites → targets → rules in order → fallthrough) and calls the same compiled predicates and bucketer,
 * so every step shown is the step evaluation took. Unlike evaluation it does not stop at the first answer: every
 * condition of every rule is tried, so a person sees why the rules before the match did not match, and what the rules
 * after it would have done. Not on any hot path; not in the browser bundle.
 */
import { BUCKETS } from './bucket.js';
import { isScalar, type CompiledFlag, type CompiledServe } from './compile.js';
import { evaluateFlag } from './evaluate.js';
import type { Condition, EvaluationContext, EvaluationDetail, JsonValue } from './types.js';

/** One condition of a rule, and whether it held for the context (after `negate`). */
export interface ConditionTrace {
  condition: Condition;
  /** The context's value of the attribute (absent for segment conditions, or when the context has none). */
  actual?: JsonValue;
  holds: boolean;
}

/** A bucket range of a rollout: contexts whose bucket is in [fromBucket, toBucket) get `variant`. */
export interface RolloutRange {
  variant: string;
  fromBucket: number;
  toBucket: number;
  percent: number;
}

/** Where a rollout placed the context. */
export interface RolloutTrace {
  bucketBy: string;
  salt: string;
  /** The context's value of `bucketBy` (absent: it has none, and the rollout cannot place it). */
  value?: JsonValue;
  /** 0–99999 (CONTRACT §3); absent without a value. */
  bucket?: number;
  ranges: RolloutRange[];
  /** The range's variant the bucket falls in. */
  variant?: string;
}

/** What a rule or the fallthrough serves, for this context. */
export interface ServeTrace {
  variant?: string;
  rollout?: RolloutTrace;
}

export interface RuleTrace {
  id: string;
  index: number;
  description?: string;
  conditions: ConditionTrace[];
  /** Every condition holds (a rule without conditions matches everyone). */
  matches: boolean;
  /** This rule decided: it matched, and evaluation reached it. */
  decided: boolean;
  serve: ServeTrace;
}

export interface PrerequisiteTrace {
  flag: string;
  /** The variants it accepts. */
  variants: string[];
  /** Missing: the environment has no such flag (the prerequisite fails). */
  missing: boolean;
  /** Off (killed or disabled): the prerequisite fails whatever it serves. */
  off: boolean;
  /** What the required flag served this context (its own evaluation, prerequisites included). */
  served?: EvaluationDetail;
  holds: boolean;
}

/** The whole decision for one flag and one context. */
export interface FlagExplanation {
  flag: string;
  /** What evaluation returned: the answer SDKs give for this context. */
  result: EvaluationDetail;
  /** The flag cannot be evaluated (why), and every step below is empty. */
  malformed?: string;
  enabled: boolean;
  prerequisites: PrerequisiteTrace[];
  /** The context's key is in a target list: the variant it pins. */
  target?: { key: string; variant: string };
  rules: RuleTrace[];
  fallthrough: ServeTrace;
  /** Which step decided: `off`, `prerequisite`, `target`, `rule`, `fallthrough`, or `error`. */
  decidedBy: 'off' | 'prerequisite' | 'target' | 'rule' | 'fallthrough' | 'error';
}

function serveTrace(flag: CompiledFlag, s: CompiledServe, ctx: EvaluationContext): ServeTrace {
  const r = s._rollout;
  if (r === null) return s._detail.variant === undefined ? {} : { variant: s._detail.variant };
  const ranges: RolloutRange[] = [];
  let from = 0;
  for (let i = 0; i < r._ends.length; i++) {
    const to = r._ends[i]!;
    if (to > from)
      ranges.push({ variant: flag.variantKeys[r._variants[i]!]!, fromBucket: from, toBucket: to, percent: ((to - from) * 100) / BUCKETS });
    from = to;
  }
  const rollout: RolloutTrace = { bucketBy: r._bucketBy, salt: r._bucketer.salt, ranges };
  const v = ctx[r._bucketBy];
  if (v !== undefined) rollout.value = v as JsonValue;
  if (isScalar(v)) {
    const b = r._bucketer.bucket(String(v));
    rollout.bucket = b;
    let i = 0;
    while (b >= r._ends[i]!) i++;
    rollout.variant = flag.variantKeys[r._variants[i]!]!;
    return { variant: rollout.variant, rollout };
  }
  // Without the attribute the rollout cannot place the context: what evaluation serves then (offVariant).
  return s._detail.variant === undefined ? { rollout } : { variant: s._detail.variant, rollout };
}

/** Explains `flag` for `context`. Never throws: a hostile context gets the result evaluation gives it. */
export function explainFlag(flag: CompiledFlag, context: EvaluationContext): FlagExplanation {
  const ctx: EvaluationContext = typeof context === 'object' && context !== null ? context : {};
  const result = evaluateFlag<JsonValue>(flag, ctx, null, true);
  const out: FlagExplanation = {
    flag: flag.key,
    result,
    enabled: flag._enabled,
    prerequisites: [],
    rules: [],
    fallthrough: {},
    decidedBy: 'error',
  };
  if (flag.error !== null) {
    out.malformed = flag.error;
    return out;
  }
  try {
    let decided: FlagExplanation['decidedBy'] | null = flag._enabled ? null : 'off';
    for (const p of flag._prereqs) {
      const parent = p._flag;
      const trace: PrerequisiteTrace = { flag: '', variants: [...p._variants], missing: parent === null, off: false, holds: false };
      trace.flag = parent?.key ?? p._failed.reason.prerequisiteKey ?? '';
      if (parent !== null) {
        const served = evaluateFlag<JsonValue>(parent, ctx, null, true);
        trace.served = served;
        trace.off = !parent._enabled;
        trace.holds = parent.error === null && parent._enabled && p._variants.includes(served.variant!);
      }
      out.prerequisites.push(trace);
      if (decided === null && !trace.holds) decided = 'prerequisite';
    }
    const key = ctx.key;
    if (typeof key === 'string') {
      const t = flag._targets.get(key);
      if (t !== undefined) {
        out.target = { key, variant: flag._targetDetails[t]!.variant! };
        if (decided === null) decided = 'target';
      }
    }
    const source = flag.config.state?.rules ?? [];
    flag._rules.forEach((rule, i) => {
      const rs = source[i];
      const conditions = rule._conditions.map((predicate, j): ConditionTrace => {
        const condition = rs?.conditions[j] as Condition;
        const trace: ConditionTrace = { condition, holds: predicate(ctx) };
        if (condition && 'attribute' in condition && ctx[condition.attribute] !== undefined) trace.actual = ctx[condition.attribute] as JsonValue;
        return trace;
      });
      const matches = conditions.every((c) => c.holds);
      const trace: RuleTrace = {
        id: rs?.id ?? `rule-${i}`,
        index: i,
        conditions,
        matches,
        decided: matches && decided === null,
        serve: serveTrace(flag, rule._serve, ctx),
      };
      if (rs?.description !== undefined) trace.description = rs.description;
      if (trace.decided) decided = 'rule';
      out.rules.push(trace);
    });
    if (flag._fallthrough !== null) out.fallthrough = serveTrace(flag, flag._fallthrough, ctx);
    out.decidedBy = decided ?? 'fallthrough';
    // The trace reached the step evaluation answered from; a pathological chain deeper than evaluation follows is the
    // one case where they could part (evaluation fails it): say what evaluation said.
    if (result.reason.kind === 'PREREQUISITE_FAILED') out.decidedBy = 'prerequisite';
    if (result.reason.kind === 'ERROR') out.decidedBy = 'error';
  } catch {
    // Only a hostile context (a throwing getter or proxy) gets here; the result is evaluation's.
    out.decidedBy = result.reason.kind === 'ERROR' ? 'error' : out.decidedBy;
  }
  return out;
}
