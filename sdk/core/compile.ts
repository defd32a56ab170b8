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
import { BUCKETS, SaltedBucketer } from './bucket.js';
import { bad, compileScalarTest } from './operators/index.js';
import type { PatternEngine } from './operators/pattern.js';
import type {
  AttributeCondition,
  AttributeScalar,
  Change,
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

/** How an environment is compiled. */
export interface CompileOptions {
  /**
   * Accelerates `matches` (same answers, still linear in the input), e.g. `lazyDfa` from `@aviary/sdk/core`.
   * Default: none, the Pike VM alone.
   */
  readonly patternEngine?: PatternEngine;
}

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

/**
 * A compiled rollout: consecutive bucket ranges per CONTRACT §3. The fields of the compiled structures below that
 * only evaluation reads are spelled `_name`, like private members: they are no API, and the browser build shortens
 * them.
 */
export interface CompiledRollout {
  readonly _bucketBy: string;
  readonly _bucketer: SaltedBucketer;
  /** `_ends[i]` is the exclusive upper bucket of weight i; the last is `BUCKETS` (it takes any remainder). */
  readonly _ends: readonly number[];
  /** Variant index of weight i. */
  readonly _variants: readonly number[];
}

/** What a rule or the fallthrough serves: a fixed variant (`_rollout` null, `_detail` says which) or a rollout. */
export interface CompiledServe {
  readonly _rollout: CompiledRollout | null;
  /** The reason without rollout fields (a rollout adds `inRollout` and `bucket` to a copy). */
  readonly _base: EvaluationReason;
  /** Frozen result of a fixed serve; of a rollout, the one for a context without `bucketBy` (offVariant). */
  readonly _detail: EvaluationDetail;
}

export interface CompiledRule {
  readonly _conditions: readonly Predicate[];
  readonly _serve: CompiledServe;
}

/**
 * A prerequisite linked to the compiled flag it names (null: no such flag in the environment, so it fails). Linking
 * at compile time keeps evaluation free of lookups, and makes a cycle impossible to follow: a flag can only point at
 * flags compiled before it (`applyChangesWith` compiles parents first and marks the members of a cycle malformed).
 */
export interface CompiledPrerequisite {
  readonly _flag: CompiledFlag | null;
  readonly _variants: readonly string[];
  /** The frozen result when it fails: `offVariant`, PREREQUISITE_FAILED, `prerequisiteKey`. */
  readonly _failed: EvaluationDetail;
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
  /** Variant keys in the flag's order. */
  readonly variantKeys: readonly string[];
  /** Segments this flag references (so a segment change recompiles it). */
  readonly segmentKeys: readonly string[];
  /** Flags this flag requires (so a change of one of them recompiles it, relinked to the new one). */
  readonly prerequisiteKeys: readonly string[];
  /** Why the flag cannot be evaluated; set means every evaluation answers ERROR / MALFORMED_FLAG. */
  readonly error: string | null;
  /** Variant values (deep-frozen), in the flag's order. */
  readonly _values: readonly JsonValue[];
  readonly _enabled: boolean;
  readonly _prereqs: readonly CompiledPrerequisite[];
  readonly _targets: ReadonlyMap<string, number>;
  readonly _rules: readonly CompiledRule[];
  readonly _fallthrough: CompiledServe | null;
  readonly _offDetail: EvaluationDetail | null;
  readonly _targetDetails: readonly EvaluationDetail[];
}

/** One environment's flags and segments, compiled. Immutable: `applyChanges` returns a new one. */
export interface CompiledEnvironment {
  readonly environment: string;
  readonly version: number;
  readonly flags: ReadonlyMap<string, CompiledFlag>;
  readonly segments: ReadonlyMap<string, CompiledSegment>;
  /** The pattern engine its conditions were compiled with (`CompileOptions`); changes applied to it use it too. */
  readonly _patternEngine: PatternEngine | undefined;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

export function isScalar(v: unknown): v is AttributeScalar {
  const t = typeof v;
  return t === 'string' || t === 'number' || t === 'boolean';
}

/** `v` if it is an array (refused as `bad array "what"` otherwise). */
function list<T>(v: T[] | undefined, what: string): T[] {
  return Array.isArray(v) ? v : bad('array', what);
}

/** Whether every predicate holds (a plain loop: this is the hottest path of evaluation). */
export function allHold(conditions: readonly Predicate[], ctx: EvaluationContext): boolean {
  for (let i = 0; i < conditions.length; i++) if (!conditions[i]!(ctx)) return false;
  return true;
}

/**
 * Compiles an attribute condition (`matches` accelerated by `patternEngine`, if given). A context that lacks the
 * attribute (or holds something that is not a scalar or an array of scalars there) fails the condition whatever
 * `negate` says; only `exists` looks at presence. An array matches if any scalar element does.
 */
export function compileAttributeCondition(c: AttributeCondition, patternEngine?: PatternEngine): Predicate {
  const attr = c.attribute;
  const negate = c.negate === true;
  if (typeof attr !== 'string') bad('attribute', attr);
  if (c.op === 'exists') return (ctx) => isPresent(ctx[attr]) !== negate;
  const values = c.values ?? [];
  if (!Array.isArray(values) || !values.every(isScalar)) bad('values', values);
  const test = compileScalarTest(c.op, values, patternEngine);
  return (ctx) => {
    const v = ctx[attr];
    if (isScalar(v)) return test(v) !== negate;
    if (!Array.isArray(v)) return false;
    for (let i = 0; i < v.length; i++) if (isScalar(v[i]) && test(v[i]!)) return !negate;
    return negate;
  };
}

function isPresent(v: unknown): boolean {
  return isScalar(v) || Array.isArray(v);
}

/**
 * Compiles a segment the server has validated (`matches` accelerated by `patternEngine`, if given). Never throws:
 * one that is not even shaped like a segment compiles to one that contains nobody and carries `error`.
 */
export function compileTrustedSegment(segment: Segment, patternEngine?: PatternEngine): CompiledSegment {
  const key = typeof segment?.key === 'string' ? segment.key : '';
  try {
    const included = new Set(list(segment.included ?? [], 'included'));
    const excluded = new Set(list(segment.excluded ?? [], 'excluded'));
    const rules = list(segment.rules ?? [], 'rules').map((r) =>
      list(r.conditions, 'conditions').map((c) => compileAttributeCondition(c, patternEngine)),
    );
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

function compileCondition(c: Condition, segments: ReadonlyMap<string, CompiledSegment>, patternEngine?: PatternEngine): Predicate {
  if (!('segment' in c)) return compileAttributeCondition(c, patternEngine);
  const seg = segments.get(c.segment) ?? bad('segment', c.segment);
  if (seg.error !== undefined) throw new Error(seg.error);
  const contains = seg.contains;
  return c.negate === true ? (ctx) => !contains(ctx) : contains;
}

/** A flag that answers every evaluation with ERROR / MALFORMED_FLAG, `error` saying why. */
export function malformed(config: FlagConfig, error: string): CompiledFlag {
  return {
    key: typeof config?.key === 'string' ? config.key : '',
    kind: KINDS.includes(config?.kind) ? config.kind : 'json',
    version: typeof config?.state?.version === 'number' ? config.state.version : 0,
    config,
    variantKeys: [],
    segmentKeys: segmentKeysOf(config),
    prerequisiteKeys: prerequisiteKeysOf(config),
    error,
    _values: [],
    _enabled: false,
    _prereqs: [],
    _targets: new Map(),
    _rules: [],
    _fallthrough: null,
    _offDetail: null,
    _targetDetails: [],
  };
}

/** The segments a flag's rules reference, read defensively (the flag may be malformed). */
export function segmentKeysOf(config: FlagConfig): string[] {
  const keys = new Set<string>();
  const rules: unknown = config?.state?.rules;
  for (const r of Array.isArray(rules) ? rules : []) {
    const conds: unknown = r?.conditions;
    for (const c of Array.isArray(conds) ? conds : []) if (typeof c?.segment === 'string') keys.add(c.segment);
  }
  return [...keys];
}

/** The flags a flag's state requires, read defensively (the flag may be malformed). */
export function prerequisiteKeysOf(config: FlagConfig): string[] {
  const pre: unknown = config?.state?.prerequisites;
  const keys = new Set<string>();
  for (const p of Array.isArray(pre) ? pre : []) if (typeof p?.flag === 'string') keys.add(p.flag);
  return [...keys];
}

const NO_FLAGS: ReadonlyMap<string, CompiledFlag> = new Map();

const KINDS: readonly string[] = ['boolean', 'string', 'number', 'json'];
const BOOLEAN_VARIANTS = [
  { key: 'on', value: true },
  { key: 'off', value: false },
];

function valueFits(kind: FlagKind, v: unknown): boolean {
  return kind === 'json' ? v !== undefined : kind === 'number' ? Number.isFinite(v) : typeof v === kind;
}

/**
 * Compiles one flag the server has validated against the environment's compiled segments (`matches` accelerated by
 * `patternEngine`, if given), linking its prerequisites to the compiled `flags` (a prerequisite not among them fails
 * at evaluation). Never throws: a flag not shaped as compilation needs (unknown variant, operator or segment, values
 * of the wrong type, ...) yields a flag whose `error` is set.
 */
export function compileTrustedFlag(
  config: FlagConfig,
  segments: ReadonlyMap<string, CompiledSegment>,
  patternEngine?: PatternEngine,
  flags: ReadonlyMap<string, CompiledFlag> = NO_FLAGS,
): CompiledFlag {
  try {
    const { key, kind, state } = config;
    if (typeof key !== 'string' || !KINDS.includes(kind)) bad('key and kind', [key, kind]);
    const variants = list(config.variants ?? (kind === 'boolean' ? BOOLEAN_VARIANTS : undefined), 'variants');
    if (variants.length === 0) bad('variants', variants);
    if (typeof state.enabled !== 'boolean') bad('enabled', state.enabled);
    const variantKeys = variants.map((v) => (typeof v.key === 'string' && valueFits(kind, v.value) ? v.key : bad(`${kind} variant`, v)));
    const variantValues = variants.map((v) => deepFreeze(structuredClone(v.value)));
    // The last of duplicate keys wins, as in a map built from the list.
    const indexOf = (variant: string): number => {
      const i = variantKeys.lastIndexOf(variant);
      return i >= 0 ? i : bad('variant', variant);
    };
    /** A shared result; `value` is one of the deep-frozen variant values, `reason` is flat. */
    const detail = (i: number, reason: EvaluationReason): EvaluationDetail =>
      Object.freeze({ value: variantValues[i]!, variant: variantKeys[i]!, reason: Object.freeze(reason) });
    const offIndex = indexOf(state.offVariant);
    const compileServe = (serve: Serve, base: EvaluationReason): CompiledServe => {
      if ('variant' in serve) return { _rollout: null, _base: base, _detail: detail(indexOf(serve.variant), base) };
      const r = serve.rollout;
      const weights = list(r.weights, 'weights');
      const bucketBy = r.bucketBy ?? 'key';
      const salt = r.salt ?? key;
      if (weights.length === 0) bad('weights', weights);
      if (typeof bucketBy !== 'string' || typeof salt !== 'string') bad('bucketBy and salt', [bucketBy, salt]);
      let edge = 0;
      const ends = weights.map((w, i) => {
        if (!(w.percent >= 0 && w.percent <= 100)) bad('percent', w.percent);
        edge += Math.round(w.percent * 1000);
        return i === weights.length - 1 ? BUCKETS : Math.min(edge, BUCKETS);
      });
      const rollout = { _bucketBy: bucketBy, _bucketer: new SaltedBucketer(salt), _ends: ends, _variants: weights.map((w) => indexOf(w.variant)) };
      return { _rollout: rollout, _base: base, _detail: detail(offIndex, { ...base, bucketByMissing: true }) };
    };
    const prereqs = list(state.prerequisites ?? [], 'prerequisites').map((p): CompiledPrerequisite => {
      const parent = typeof p?.flag === 'string' ? p.flag : bad('prerequisite', p);
      const variants = list(p.variants, 'prerequisite');
      if (!variants.every((v) => typeof v === 'string')) bad('prerequisite', p);
      return {
        _flag: flags.get(parent) ?? null,
        _variants: [...variants],
        _failed: detail(offIndex, { kind: 'PREREQUISITE_FAILED', prerequisiteKey: parent }),
      };
    });
    const targets = new Map<string, number>();
    for (const t of list(state.targets ?? [], 'targets')) {
      const i = indexOf(t.variant);
      for (const k of list(t.keys, 'target keys')) targets.set(k, i);
    }
    const rules = list(state.rules ?? [], 'rules').map((r, ruleIndex): CompiledRule => {
      if (typeof r.id !== 'string') bad('rule id', r.id);
      return {
        _serve: compileServe(r.serve, { kind: 'RULE_MATCH', ruleId: r.id, ruleIndex }),
        _conditions: list(r.conditions, 'conditions').map((c) => compileCondition(c, segments, patternEngine)),
      };
    });
    return {
      key,
      kind,
      version: typeof state.version === 'number' ? state.version : 0,
      config,
      variantKeys,
      segmentKeys: segmentKeysOf(config),
      prerequisiteKeys: prerequisiteKeysOf(config),
      error: null,
      _values: variantValues,
      _enabled: state.enabled,
      _prereqs: prereqs,
      _targets: targets,
      _rules: rules,
      _fallthrough: compileServe(state.fallthrough, { kind: 'FALLTHROUGH' }),
      _offDetail: detail(offIndex, { kind: 'OFF' }),
      _targetDetails: variantKeys.map((_, i) => detail(i, { kind: 'TARGET_MATCH' })),
    };
  } catch (e) {
    return malformed(config, `cannot compile: ${errorText(e)}`);
  }
}

/** How flags and segments are compiled: trusted (here) or validated first (`compile-checked.ts`). */
export interface Compilers {
  readonly flag: (
    config: FlagConfig,
    segments: ReadonlyMap<string, CompiledSegment>,
    patternEngine: PatternEngine | undefined,
    flags: ReadonlyMap<string, CompiledFlag>,
  ) => CompiledFlag;
  readonly segment: (segment: Segment, patternEngine: PatternEngine | undefined) => CompiledSegment;
}

/** The compilers of flags and segments the server has validated (the SDK's). */
export const TRUSTED: Compilers = { flag: compileTrustedFlag, segment: compileTrustedSegment };

/** Compiles a whole snapshot of validated flags and segments (see `compileTrustedFlag`) as `options` say. Never throws. */
export function compileTrustedEnvironment(snapshot: EnvironmentSnapshot, options?: CompileOptions): CompiledEnvironment {
  return compileEnvironmentWith(snapshot, TRUSTED, options);
}

/** Compiles a whole snapshot with the given compilers, as `options` say. Never throws. */
export function compileEnvironmentWith(snapshot: EnvironmentSnapshot, compilers: Compilers, options?: CompileOptions): CompiledEnvironment {
  const empty: CompiledEnvironment = { environment: '', version: 0, flags: new Map(), segments: new Map(), _patternEngine: options?.patternEngine };
  const { environment, version } = snapshot ?? {};
  // A snapshot is the changes that upsert all its segments, then all its flags, into an empty environment.
  const upserts = (items: unknown, type: 'segment.upsert' | 'flag.upsert', field: 'segment' | 'flag'): Change[] =>
    Array.isArray(items) ? items.map((v) => ({ type, [field]: v }) as Change) : [];
  return {
    ...applyChangesWith(
      empty,
      [...upserts(snapshot?.segments, 'segment.upsert', 'segment'), ...upserts(snapshot?.flags, 'flag.upsert', 'flag')],
      typeof version === 'number' ? version : 0,
      compilers,
    ),
    environment: typeof environment === 'string' ? environment : '',
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
 * keeps a consistent view), compiled with the same pattern engine. Only what changed is recompiled: an upserted
 * flag, every flag that references a changed or deleted segment, and every flag that requires (directly or through
 * other flags) one of those or a deleted flag, since a compiled flag links to the compiled flags it requires.
 * Required flags are compiled before the flags requiring them; the members of a prerequisite cycle (which the server
 * refuses to store) compile to malformed flags naming the cycle. `version`, if given, becomes the new environment's
 * version. Never throws.
 */
export function applyChangesWith(
  env: CompiledEnvironment,
  changes: readonly Change[],
  version: number | undefined,
  compilers: Compilers,
): CompiledEnvironment {
  const flags = new Map(env.flags);
  const all = Array.isArray(changes) ? changes : [];
  // Most deltas touch flags only: they share the (immutable) compiled segments instead of copying them.
  const touchesSegments = all.some((ch) => ch?.type === 'segment.upsert' || ch?.type === 'segment.delete');
  const segments = touchesSegments ? new Map(env.segments) : (env.segments as Map<string, CompiledSegment>);
  const engine = env._patternEngine;
  const dirtyFlags = new Map<string, FlagConfig>();
  const dirtySegments = new Set<string>();
  const deletedFlags: string[] = [];
  for (const ch of all) {
    switch (ch?.type) {
      case 'flag.upsert': {
        const key = ch.flag?.key;
        if (typeof key === 'string') dirtyFlags.set(key, ch.flag);
        break;
      }
      case 'flag.delete':
        dirtyFlags.delete(ch.key);
        flags.delete(ch.key);
        deletedFlags.push(ch.key);
        break;
      case 'segment.upsert': {
        const c = compilers.segment(ch.segment, engine);
        if (c.key !== '') {
          segments.set(c.key, c);
          dirtySegments.add(c.key);
        }
        break;
      }
      case 'segment.delete':
        segments.delete(ch.key);
        dirtySegments.add(ch.key);
    }
  }
  // One pass over the flags: those using a changed segment, and who requires whom (only when anyone requires anyone).
  const dependents = new Map<string, string[]>();
  const requires = (child: string, parents: readonly string[]) => {
    for (const p of parents) {
      const list = dependents.get(p);
      if (list === undefined) dependents.set(p, [child]);
      else list.push(child);
    }
  };
  for (const f of flags.values()) {
    if (dirtyFlags.has(f.key)) continue;
    if (f.segmentKeys.some((k) => dirtySegments.has(k))) dirtyFlags.set(f.key, f.config);
    requires(f.key, f.prerequisiteKeys);
  }
  for (const [key, config] of dirtyFlags) requires(key, prerequisiteKeysOf(config));
  if (dependents.size > 0) {
    const queue = [...dirtyFlags.keys(), ...deletedFlags];
    for (let q = 0; q < queue.length; q++) {
      for (const child of dependents.get(queue[q]!) ?? []) {
        const f = flags.get(child);
        if (f !== undefined && !dirtyFlags.has(child)) {
          dirtyFlags.set(child, f.config);
          queue.push(child);
        }
      }
    }
  }
  compileInOrder(dirtyFlags, flags, (config) => compilers.flag(config, segments, engine, flags));
  return { environment: env.environment, version: version ?? env.version, flags, segments, _patternEngine: engine };
}

/**
 * Compiles `dirty` into `flags`, each flag after the dirty flags it requires: Tarjan's strongly connected components
 * (with an explicit stack, so a long chain cannot overflow the call stack) come out required-first. The members of a
 * component that is a cycle (more than one flag, or a flag requiring itself) compile to malformed flags naming a
 * cycle through each; flags requiring one then fail that prerequisite. Flags not in `dirty` are linked as they are.
 */
function compileInOrder(
  dirty: ReadonlyMap<string, FlagConfig>,
  flags: Map<string, CompiledFlag>,
  compile: (config: FlagConfig) => CompiledFlag,
): void {
  const deps = (key: string) => prerequisiteKeysOf(dirty.get(key)!).filter((d) => dirty.has(d));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  // New keys take their place in the given order (what `evaluateAll` and snapshots list), not the compile order; the
  // placeholder is replaced before anything links to it (required flags compile first, cycle members are malformed).
  for (const [key, config] of dirty) if (!flags.has(key)) flags.set(key, malformed(config, ''));
  for (const root of dirty.keys()) {
    if (index.has(root)) continue;
    const work: { key: string; deps: string[]; i: number }[] = [];
    const visit = (key: string) => {
      index.set(key, index.size);
      low.set(key, index.size - 1);
      stack.push(key);
      onStack.add(key);
      work.push({ key, deps: deps(key), i: 0 });
    };
    visit(root);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      if (top.i < top.deps.length) {
        const d = top.deps[top.i++]!;
        if (!index.has(d)) visit(d);
        else if (onStack.has(d)) low.set(top.key, Math.min(low.get(top.key)!, index.get(d)!));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) low.set(parent.key, Math.min(low.get(parent.key)!, low.get(top.key)!));
      if (low.get(top.key) !== index.get(top.key)) continue;
      const members = stack.splice(stack.lastIndexOf(top.key));
      for (const m of members) onStack.delete(m);
      const cyclic = members.length > 1 || top.deps.includes(top.key);
      for (const m of members) {
        const config = dirty.get(m)!;
        flags.set(m, cyclic ? malformed(config, `prerequisite cycle: ${cycleThrough(m, new Set(members), deps).join(' → ')}`) : compile(config));
      }
    }
  }
}

/** A shortest cycle from `key` back to itself within `members` (its strongly connected component). */
function cycleThrough(key: string, members: ReadonlySet<string>, deps: (key: string) => string[]): string[] {
  const from = new Map<string, string>();
  const queue = [key];
  for (let q = 0; q < queue.length; q++) {
    for (const d of deps(queue[q]!)) {
      if (!members.has(d)) continue;
      if (d === key) {
        const path = [key];
        for (let c = queue[q]!; c !== key; c = from.get(c)!) path.splice(1, 0, c);
        return [...path, key];
      }
      if (!from.has(d)) {
        from.set(d, queue[q]!);
        queue.push(d);
      }
    }
  }
  return [key, key];
}
