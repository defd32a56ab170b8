/**
 * Compilation: a flag becomes a tree of plain closures and precomputed tables (sets for `in`, bucket edges, parsed
 * semvers and dates, targets as a map) once, when a snapshot or change arrives, so evaluation does no parsing.
 *
 * This module trusts its input to have been validated already (the server validates every flag and segment on
 * write), so it does not import the validator: the SDK, which only compiles what the server or a bootstrap snapshot
 * hands it, ships without it. "Trusted" never means "may throw": every structural assumption compilation relies on
 * is checked cheaply as it goes, and a flag that breaks one, or references a missing or malformed segment, compiles
 * to a flag that evaluates to the caller's default with ERROR / MALFORMED_FLAG. `compile-checked.ts` adds full,
 * path-addressed validation in front (server and console).
 */
import type { Change } from '../protocol.js';
import { BUCKETS, SaltedBucketer } from './bucket.js';
import { compileScalarTest, hasPrefix, hasSuffix, type ScalarTest } from './operators/index.js';
import type {
  AttributeCondition,
  AttributeScalar,
  Condition,
  EnvironmentSnapshot,
  EvaluationContext,
  EvaluationDetail,
  EvaluationReason,
  FlagConfig,
  FlagKind,
  JsonValue,
  Segment,
  Serve,
} from './types.js';
import { OPERATORS } from './types.js';

/** Reason kinds as small integers, the index evaluation counters use (order of `REASON_KINDS`). */
export const REASON_OFF = 0;
export const REASON_TARGET_MATCH = 1;
export const REASON_RULE_MATCH = 2;
export const REASON_FALLTHROUGH = 3;
export const REASON_ERROR = 4;
export const REASON_KINDS = ['OFF', 'TARGET_MATCH', 'RULE_MATCH', 'FALLTHROUGH', 'ERROR'] as const;

/** A compiled predicate over a context. */
export type Predicate = (ctx: EvaluationContext) => boolean;

/** A compiled segment: membership test for one context. */
export interface CompiledSegment {
  readonly key: string;
  readonly source: Segment;
  /** Set when the segment failed validation: flags using it are malformed. */
  readonly error?: string;
  readonly contains: Predicate;
}

/** A compiled rollout: consecutive bucket ranges per CONTRACT §3. */
export interface CompiledRollout {
  readonly bucketBy: string;
  readonly bucketer: SaltedBucketer;
  /** `ends[i]` is the exclusive upper bucket of weight i; the last weight takes any remainder. */
  readonly ends: Int32Array;
  /** Variant index of weight i. */
  readonly variants: Int32Array;
}

/** A compiled serve: a fixed variant (`rollout` null) or a rollout (`variant` -1). */
export interface CompiledServe {
  readonly variant: number;
  readonly rollout: CompiledRollout | null;
}

export interface CompiledRule {
  readonly id: string;
  readonly index: number;
  readonly conditions: readonly Predicate[];
  readonly serve: CompiledServe;
  /** Frozen detail for a fixed-variant serve. */
  readonly detail: EvaluationDetail | null;
  /** Frozen detail for a rollout whose bucketBy attribute is missing (serves offVariant). */
  readonly missingDetail: EvaluationDetail | null;
}

/**
 * A flag ready to evaluate. Details that do not depend on the context's bucket are built once and frozen, so most
 * evaluations return a shared object; callers must not (and cannot) mutate them.
 */
export interface CompiledFlag {
  readonly key: string;
  readonly kind: FlagKind;
  readonly version: number;
  readonly config: FlagConfig;
  /** Variant keys and (deep-frozen) values, in the flag's order. */
  readonly variantKeys: readonly string[];
  readonly variantValues: readonly JsonValue[];
  /** Segments this flag references (so a segment change recompiles it). */
  readonly segmentKeys: readonly string[];
  /** Why the flag cannot be evaluated; set means every evaluation answers ERROR / MALFORMED_FLAG. */
  readonly error: string | null;
  readonly enabled: boolean;
  readonly offIndex: number;
  readonly targets: ReadonlyMap<string, number>;
  readonly rules: readonly CompiledRule[];
  readonly fallthrough: CompiledServe;
  readonly offDetail: EvaluationDetail | null;
  readonly targetDetails: readonly EvaluationDetail[];
  readonly fallthroughDetail: EvaluationDetail | null;
  readonly fallthroughMissingDetail: EvaluationDetail | null;
}

/** One environment's flags and segments, compiled. Immutable: `applyChanges` returns a new one. */
export interface CompiledEnvironment {
  readonly environment: string;
  readonly version: number;
  readonly flags: ReadonlyMap<string, CompiledFlag>;
  readonly segments: ReadonlyMap<string, CompiledSegment>;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

function cloneJson(v: JsonValue): JsonValue {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map(cloneJson);
  const out: { [k: string]: JsonValue } = {};
  for (const k of Object.keys(v)) out[k] = cloneJson(v[k]!);
  return out;
}

function isScalar(v: unknown): boolean {
  const t = typeof v;
  return t === 'string' || t === 'number' || t === 'boolean';
}

/**
 * Compiles an attribute condition. A context that lacks the attribute (or holds something that is not a scalar or
 * an array of scalars there) fails the condition whatever `negate` says; only `exists` looks at presence.
 */
export function compileAttributeCondition(c: AttributeCondition): Predicate {
  const attr = c.attribute;
  if (typeof attr !== 'string') throw new Error('condition without an attribute');
  if (!OPERATORS.includes(c.op)) throw new Error(`unknown operator ${JSON.stringify(c.op)}`);
  const negate = c.negate === true;
  if (c.op === 'exists') {
    return negate ? (ctx) => !isPresent(ctx[attr]) : (ctx) => isPresent(ctx[attr]);
  }
  const values = c.values ?? [];
  if (!Array.isArray(values) || !values.every(isScalar)) throw new Error('condition values must be scalars');
  const test = compileScalarTest(c.op, values);
  return specialized(c.op, values, attr, negate, test) ?? generic(attr, negate, test);
}

function generic(attr: string, negate: boolean, test: ScalarTest): Predicate {
  return (ctx) => {
    const v = ctx[attr];
    const t = typeof v;
    if (t === 'string' || t === 'number' || t === 'boolean') return test(v as AttributeScalar) !== negate;
    return arrayOrMissing(v, test, negate);
  };
}

/** The non-scalar cases: an array matches if any scalar element does; anything else counts as missing. */
function arrayOrMissing(v: unknown, test: ScalarTest, negate: boolean): boolean {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) {
    const e: unknown = v[i];
    if (isScalar(e) && test(e as AttributeScalar)) return !negate;
  }
  return negate;
}

/**
 * Closures with the scalar test written inline, for the operators rules use most. Each is its own function
 * literal, so V8 sees one operator's shape per call site instead of a call through `test` for every condition;
 * arrays and missing attributes still take `arrayOrMissing`. Same results as `generic`.
 */
function specialized(op: string, values: readonly AttributeScalar[], attr: string, negate: boolean, test: ScalarTest): Predicate | undefined {
  const only = values.length === 1 ? values[0] : undefined;
  switch (op) {
    case 'in': {
      if (only !== undefined) {
        return (ctx) => {
          const v = ctx[attr];
          const t = typeof v;
          if (t === 'string' || t === 'number' || t === 'boolean') return (v === only) !== negate;
          return arrayOrMissing(v, test, negate);
        };
      }
      const set = new Set<unknown>(values);
      return (ctx) => {
        const v = ctx[attr];
        const t = typeof v;
        if (t === 'string' || t === 'number' || t === 'boolean') return set.has(v) !== negate;
        return arrayOrMissing(v, test, negate);
      };
    }
    case 'startsWith':
    case 'endsWith': {
      if (typeof only !== 'string') return undefined;
      const suffix = op === 'endsWith';
      return (ctx) => {
        const v = ctx[attr];
        if (typeof v === 'string') return (suffix ? hasSuffix(v, only) : hasPrefix(v, only)) !== negate;
        if (typeof v === 'number' || typeof v === 'boolean') return negate;
        return arrayOrMissing(v, test, negate);
      };
    }
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte': {
      // "Any value matches" is one comparison against the most permissive value, as in compileScalarTest.
      const ns = values as readonly number[];
      const bound = op === 'lt' || op === 'lte' ? Math.max(...ns) : Math.min(...ns);
      const code = op === 'lt' ? 0 : op === 'lte' ? 1 : op === 'gt' ? 2 : 3;
      return (ctx) => {
        const v = ctx[attr];
        if (typeof v === 'number') {
          const hit = code === 0 ? v < bound : code === 1 ? v <= bound : code === 2 ? v > bound : v >= bound;
          return hit !== negate;
        }
        if (typeof v === 'string' || typeof v === 'boolean') return negate;
        return arrayOrMissing(v, test, negate);
      };
    }
    default:
      return undefined;
  }
}

function isPresent(v: unknown): boolean {
  return v !== undefined && v !== null && (isScalar(v) || Array.isArray(v));
}

function allHold(conditions: readonly Predicate[], ctx: EvaluationContext): boolean {
  for (let i = 0; i < conditions.length; i++) if (!conditions[i]!(ctx)) return false;
  return true;
}

function list<T>(v: T[] | undefined, what: string): T[] {
  if (!Array.isArray(v)) throw new Error(`${what} must be an array`);
  return v;
}

/**
 * Compiles a segment the server has validated. Never throws: one that is not even shaped like a segment compiles
 * to one that contains nobody and carries `error`.
 */
export function compileTrustedSegment(segment: Segment): CompiledSegment {
  const key = typeof (segment as { key?: unknown })?.key === 'string' ? segment.key : '';
  try {
    const included = new Set(list(segment.included ?? [], 'included'));
    const excluded = new Set(list(segment.excluded ?? [], 'excluded'));
    const rules = list(segment.rules ?? [], 'rules').map((r) => list(r.conditions, 'conditions').map(compileAttributeCondition));
    const contains: Predicate = (ctx) => {
      const k = ctx.key;
      if (typeof k === 'string') {
        if (included.has(k)) return true;
        if (excluded.has(k)) return false;
      }
      for (let i = 0; i < rules.length; i++) if (allHold(rules[i]!, ctx)) return true;
      return false;
    };
    return { key, source: segment, contains };
  } catch (e) {
    return brokenSegment(segment, key, `is malformed: ${errorText(e)}`);
  }
}

/** A segment that contains nobody; flags using it are malformed, with `why` in their error. */
export function brokenSegment(segment: Segment, key: string, why: string): CompiledSegment {
  return { key, source: segment, error: `segment "${key}" ${why}`, contains: () => false };
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function compileCondition(c: Condition, segments: ReadonlyMap<string, CompiledSegment>): Predicate {
  if ('segment' in c) {
    const seg = segments.get(c.segment);
    if (seg === undefined) throw new Error(`unknown segment "${c.segment}"`);
    if (seg.error !== undefined) throw new Error(seg.error);
    const contains = seg.contains;
    return c.negate === true ? (ctx) => !contains(ctx) : contains;
  }
  return compileAttributeCondition(c);
}

function indexOf(variantIndex: ReadonlyMap<string, number>, variant: string): number {
  const i = variantIndex.get(variant);
  if (i === undefined) throw new Error(`unknown variant ${JSON.stringify(variant)}`);
  return i;
}

function compileServe(serve: Serve, variantIndex: ReadonlyMap<string, number>, flagKey: string): CompiledServe {
  if ('variant' in serve) return { variant: indexOf(variantIndex, serve.variant), rollout: null };
  const r = serve.rollout;
  const weights = list(r.weights, 'weights');
  if (weights.length === 0) throw new Error('a rollout needs weights');
  const bucketBy = r.bucketBy ?? 'key';
  const salt = r.salt ?? flagKey;
  if (typeof bucketBy !== 'string' || typeof salt !== 'string') throw new Error('bucketBy and salt must be strings');
  const ends = new Int32Array(weights.length);
  const variants = new Int32Array(weights.length);
  let edge = 0;
  weights.forEach((w, i) => {
    if (!(w.percent >= 0 && w.percent <= 100)) throw new Error('percent must be within 0..100');
    edge += Math.round(w.percent * 1000);
    ends[i] = i === weights.length - 1 ? BUCKETS : Math.min(edge, BUCKETS);
    variants[i] = indexOf(variantIndex, w.variant);
  });
  return { variant: -1, rollout: { bucketBy, bucketer: new SaltedBucketer(salt), ends, variants } };
}

/** A shared result; `value` is one of the flag's already deep-frozen variant values, `reason` is flat. */
function detail(value: JsonValue, variant: string, reason: EvaluationReason): EvaluationDetail {
  return Object.freeze({ value, variant, reason: Object.freeze(reason) });
}

/** A flag that answers every evaluation with ERROR / MALFORMED_FLAG, `error` saying why. */
export function malformed(config: FlagConfig, error: string): CompiledFlag {
  const key = typeof (config as { key?: unknown })?.key === 'string' ? config.key : '';
  const kind = KINDS.includes((config as { kind?: unknown })?.kind as string) ? config.kind : 'json';
  const version = typeof config?.state?.version === 'number' ? config.state.version : 0;
  return {
    key,
    kind,
    version,
    config,
    variantKeys: [],
    variantValues: [],
    segmentKeys: segmentKeysOf(config),
    error,
    enabled: false,
    offIndex: -1,
    targets: new Map(),
    rules: [],
    fallthrough: { variant: -1, rollout: null },
    offDetail: null,
    targetDetails: [],
    fallthroughDetail: null,
    fallthroughMissingDetail: null,
  };
}

export function segmentKeysOf(config: FlagConfig): string[] {
  const keys = new Set<string>();
  const rules: unknown = config?.state?.rules;
  if (Array.isArray(rules)) {
    for (const r of rules) {
      const conds: unknown = (r as { conditions?: unknown })?.conditions;
      if (!Array.isArray(conds)) continue;
      for (const c of conds) {
        const s: unknown = (c as { segment?: unknown })?.segment;
        if (typeof s === 'string') keys.add(s);
      }
    }
  }
  return [...keys];
}

const KINDS: readonly string[] = ['boolean', 'string', 'number', 'json'];
const BOOLEAN_VARIANTS = [
  { key: 'on', value: true },
  { key: 'off', value: false },
];

function valueFits(kind: FlagKind, v: unknown): boolean {
  if (kind === 'json') return v !== undefined;
  return kind === 'number' ? Number.isFinite(v) : typeof v === kind;
}

/**
 * Compiles one flag the server has validated against the environment's compiled segments. Never throws: a flag not
 * shaped as compilation needs (unknown variant, operator or segment, values of the wrong type, ...) yields a flag
 * whose `error` is set.
 */
export function compileTrustedFlag(config: FlagConfig, segments: ReadonlyMap<string, CompiledSegment>): CompiledFlag {
  try {
    const key = config.key;
    const kind = config.kind;
    if (typeof key !== 'string' || !KINDS.includes(kind)) throw new Error('key and kind are required');
    const rawVariants = config.variants ?? (kind === 'boolean' ? BOOLEAN_VARIANTS : undefined);
    const variantsIn = list(rawVariants, 'variants');
    if (variantsIn.length === 0) throw new Error('no variants');
    const state = config.state;
    if (typeof state.enabled !== 'boolean') throw new Error('state.enabled must be a boolean');
    const variantKeys = variantsIn.map((v) => {
      if (typeof v.key !== 'string' || !valueFits(kind, v.value)) throw new Error(`variant ${JSON.stringify(v.key)} does not fit a ${kind} flag`);
      return v.key;
    });
    const variantValues = variantsIn.map((v) => deepFreeze(cloneJson(v.value)));
    const variantIndex = new Map(variantKeys.map((k, i) => [k, i]));
    const offIndex = indexOf(variantIndex, state.offVariant);
    const offValue = variantValues[offIndex]!;
    const offKey = variantKeys[offIndex]!;
    const targets = new Map<string, number>();
    for (const t of list(state.targets ?? [], 'targets')) {
      const vi = indexOf(variantIndex, t.variant);
      for (const k of list(t.keys, 'target keys')) targets.set(k, vi);
    }
    const rules: CompiledRule[] = list(state.rules ?? [], 'rules').map((r, index) => {
      if (typeof r.id !== 'string') throw new Error('rule without an id');
      const serve = compileServe(r.serve, variantIndex, key);
      return {
        id: r.id,
        index,
        conditions: list(r.conditions, 'conditions').map((c) => compileCondition(c, segments)),
        serve,
        detail:
          serve.rollout === null
            ? detail(variantValues[serve.variant]!, variantKeys[serve.variant]!, { kind: 'RULE_MATCH', ruleId: r.id, ruleIndex: index })
            : null,
        missingDetail:
          serve.rollout === null
            ? null
            : detail(offValue, offKey, { kind: 'RULE_MATCH', ruleId: r.id, ruleIndex: index, bucketByMissing: true }),
      };
    });
    const fallthrough = compileServe(state.fallthrough, variantIndex, key);
    const version = typeof state.version === 'number' ? state.version : 0;
    return {
      key,
      kind,
      version,
      config,
      variantKeys,
      variantValues,
      segmentKeys: segmentKeysOf(config),
      error: null,
      enabled: state.enabled,
      offIndex,
      targets,
      rules,
      fallthrough,
      offDetail: detail(offValue, offKey, { kind: 'OFF' }),
      targetDetails: variantKeys.map((k, i) => detail(variantValues[i]!, k, { kind: 'TARGET_MATCH' })),
      fallthroughDetail:
        fallthrough.rollout === null
          ? detail(variantValues[fallthrough.variant]!, variantKeys[fallthrough.variant]!, { kind: 'FALLTHROUGH' })
          : null,
      fallthroughMissingDetail:
        fallthrough.rollout === null ? null : detail(offValue, offKey, { kind: 'FALLTHROUGH', bucketByMissing: true }),
    };
  } catch (e) {
    return malformed(config, `cannot compile: ${errorText(e)}`);
  }
}

/** How flags and segments are compiled: trusted (here) or validated first (`compile-checked.ts`). */
export interface Compilers {
  readonly flag: (config: FlagConfig, segments: ReadonlyMap<string, CompiledSegment>) => CompiledFlag;
  readonly segment: (segment: Segment) => CompiledSegment;
}

/** The compilers of flags and segments the server has validated (the SDK's). */
export const TRUSTED: Compilers = { flag: compileTrustedFlag, segment: compileTrustedSegment };

/** Compiles a whole snapshot of validated flags and segments (see `compileTrustedFlag`). Never throws. */
export function compileTrustedEnvironment(snapshot: EnvironmentSnapshot): CompiledEnvironment {
  return compileEnvironmentWith(snapshot, TRUSTED);
}

/** Compiles a whole snapshot with the given compilers. Never throws. */
export function compileEnvironmentWith(snapshot: EnvironmentSnapshot, compilers: Compilers): CompiledEnvironment {
  const segments = new Map<string, CompiledSegment>();
  const rawSegments: unknown = snapshot?.segments;
  if (Array.isArray(rawSegments)) {
    for (const s of rawSegments) {
      const c = compilers.segment(s as Segment);
      if (c.key !== '') segments.set(c.key, c);
    }
  }
  const flags = new Map<string, CompiledFlag>();
  const rawFlags: unknown = snapshot?.flags;
  if (Array.isArray(rawFlags)) {
    for (const f of rawFlags) {
      const c = compilers.flag(f as FlagConfig, segments);
      if (c.key !== '') flags.set(c.key, c);
    }
  }
  return {
    environment: typeof snapshot?.environment === 'string' ? snapshot.environment : '',
    version: typeof snapshot?.version === 'number' ? snapshot.version : 0,
    flags,
    segments,
  };
}

/** Keys of the flags in `env` whose rules reference segment `segmentKey`. */
export function flagKeysUsingSegment(env: CompiledEnvironment, segmentKey: string): string[] {
  const out: string[] = [];
  for (const f of env.flags.values()) if (f.segmentKeys.includes(segmentKey)) out.push(f.key);
  return out;
}

/** `applyChangesWith` for validated flags and segments (the SDK's). Never throws. */
export function applyTrustedChanges(env: CompiledEnvironment, changes: readonly Change[], version?: number): CompiledEnvironment {
  return applyChangesWith(env, changes, version, TRUSTED);
}

/**
 * Applies changes in order and returns a new environment (the given one is left intact, so a reader holding it
 * keeps a consistent view). Only what changed is recompiled: an upserted flag, and every flag that references a
 * changed or deleted segment. `version`, if given, becomes the new environment's version. Never throws.
 */
export function applyChangesWith(
  env: CompiledEnvironment,
  changes: readonly Change[],
  version: number | undefined,
  compilers: Compilers,
): CompiledEnvironment {
  const flags = new Map(env.flags);
  const list = Array.isArray(changes) ? changes : [];
  // Most deltas touch flags only: they share the (immutable) compiled segments instead of copying them.
  const touchesSegments = list.some((ch) => ch?.type === 'segment.upsert' || ch?.type === 'segment.delete');
  const segments = touchesSegments ? new Map(env.segments) : (env.segments as Map<string, CompiledSegment>);
  const dirtyFlags = new Map<string, FlagConfig>();
  const dirtySegments = new Set<string>();
  for (const ch of list) {
    if (ch === null || typeof ch !== 'object') continue;
    switch (ch.type) {
      case 'flag.upsert': {
        const key = ch.flag?.key;
        if (typeof key === 'string') dirtyFlags.set(key, ch.flag);
        break;
      }
      case 'flag.delete':
        dirtyFlags.delete(ch.key);
        flags.delete(ch.key);
        break;
      case 'segment.upsert': {
        const c = compilers.segment(ch.segment);
        if (c.key !== '') {
          segments.set(c.key, c);
          dirtySegments.add(c.key);
        }
        break;
      }
      case 'segment.delete':
        segments.delete(ch.key);
        dirtySegments.add(ch.key);
        break;
    }
  }
  if (dirtySegments.size > 0) {
    for (const f of flags.values()) {
      if (dirtyFlags.has(f.key)) continue;
      if (f.segmentKeys.some((k) => dirtySegments.has(k))) dirtyFlags.set(f.key, f.config);
    }
  }
  for (const [key, config] of dirtyFlags) flags.set(key, compilers.flag(config, segments));
  return { environment: env.environment, version: version ?? env.version, flags, segments };
}
