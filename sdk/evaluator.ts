/**
 * The SDK's flags and its hot evaluation path: holds a compiled environment, keeps it current with snapshots and
 * deltas (naming the flags each one changed, for `change` events), evaluates locally, and counts evaluations per
 * flag, variant and reason on preallocated counters: the result itself says which counter (its variant and reason
 * kind), so counting is an indexed increment with nothing allocated beyond the result (results that do not carry a
 * bucket are shared frozen objects). Outcomes recorded with `track()` / `measure()` are aggregated per flag and
 * variant beside them: counts, errors, a latency histogram with the shared log-scale buckets (so reports from many
 * SDKs merge exactly) and the sum of numeric values. `drain` hands both over as the `VariantStats` of
 * `POST /sdk/v1/metrics`, one row per flag and variant. A flag evaluated as another's prerequisite is counted too,
 * with what it served (as LaunchDarkly records prerequisite evaluations): it was used to decide a result.
 */
// Imported by file, not through core/index.ts: the SDK compiles flags the server already validated, so the
// validator (and compile-checked.ts) must stay out of the browser bundle.
import { applyTrustedChanges, compileTrustedEnvironment, type CompiledEnvironment, type CompiledFlag, type CompileOptions } from './core/compile.js';
import { errorDetail, evaluateFlag, REASON_KINDS } from './core/evaluate.js';
import { latencyBucket } from './core/histogram.js';
import type { Change, EnvironmentSnapshot, EvaluationContext, EvaluationDetail, JsonValue, ReasonKind } from './core/types.js';
import type { VariantStats } from './protocol.js';

const REASONS = REASON_KINDS.length;

/** Counters of one compiled flag's variants; row 0 counts evaluations that returned the caller's default. */
interface Slot {
  _flag: CompiledFlag;
  readonly _variantKeys: readonly string[];
  /** `(variantIndex + 1) * REASONS + reasonIndex`. Float64 so a busy minute cannot overflow. */
  readonly _counts: Float64Array;
  _dirty: boolean;
}

/** The outcome of one unit of work done under a flag. */
export interface Outcome {
  /** The work failed. */
  error?: boolean;
  /** How long it took, in milliseconds. */
  latencyMs?: number;
  /** A numeric measurement (e.g. revenue, items in cart): summed per variant. */
  value?: number;
}

/** Options of an `Evaluator`; `patternEngine` (see `CompileOptions`) compiles every snapshot and change it applies. */
export interface EvaluatorOptions extends CompileOptions {
  /**
   * Distinct (flag, variant) pairs with outcomes between two drains (default 10,000); outcomes of further pairs are
   * only counted in `droppedOutcomes`, so memory stays bounded.
   */
  maxOutcomePairs?: number;
  /**
   * How many distinct unknown flag keys are counted between two drains (default 100). Evaluations of further
   * unknown keys still answer FLAG_NOT_FOUND but are only added to `droppedUnknownEvaluations`, so a caller that
   * asks for ever-new keys cannot grow memory without bound.
   */
  maxUnknownFlags?: number;
}

const EMPTY_SNAPSHOT: EnvironmentSnapshot = { environment: '', version: 0, flags: [], segments: [] };

/** The keys of flags that differ between two environments (`same` decides for a flag in both), sorted. */
function changedKeys(before: CompiledEnvironment, after: CompiledEnvironment, same: (a: CompiledFlag, b: CompiledFlag) => boolean): string[] {
  const out: string[] = [];
  for (const [key, f] of after.flags) {
    const b = before.flags.get(key);
    if (b === undefined || !same(b, f)) out.push(key);
  }
  for (const key of before.flags.keys()) if (!after.flags.has(key)) out.push(key);
  return out.sort();
}

const json = (v: unknown) => JSON.stringify(v);

/** One key per (flag, variant) pair; `variant` null is the caller's default (variant keys are never empty). */
const pairId = (flag: string, variant: string | null) => flag + '\u0000' + (variant ?? '');

/**
 * Counts one evaluation. The result says which counter: the row of its variant (row 0 when it has none: the caller's
 * default) and the column of its reason kind. Both lists are short and hold the very strings compilation put in the
 * result, so the scans cost a few nanoseconds, and evaluation needs no side channel.
 */
function count(slot: Slot, d: EvaluationDetail<unknown>): void {
  slot._counts[(slot._variantKeys.indexOf(d.variant!) + 1) * REASONS + REASON_KINDS.indexOf(d.reason.kind)]!++;
  slot._dirty = true;
}

/**
 * Local evaluation with per-variant counting. Not thread-shared: one per client.
 */
export class Evaluator {
  private _env!: CompiledEnvironment;
  private readonly _slots = new Map<string, Slot>();
  /** Counters of flags deleted or whose variants changed since the last drain; reported once, then dropped. */
  private _retired: Slot[] = [];
  private _unknown = new Map<string, number>();
  private readonly _maxUnknown: number;
  /** Evaluations of unknown flag keys beyond `maxUnknownFlags` since the last drain (not reported per key). */
  droppedUnknownEvaluations = 0;
  /** Outcomes since the last drain, by `pairId`, as the rows they are reported in. */
  private _outcomes = new Map<string, VariantStats>();
  private readonly _maxOutcomePairs: number;
  /** Outcomes not recorded because `maxOutcomePairs` was reached (reported, so that loss is visible). */
  droppedOutcomes = 0;
  /** How snapshots and changes are compiled (the options' `patternEngine`). */
  private readonly _compile: CompileOptions;

  /** @param snapshot what to serve first (default: nothing, every flag is unknown) */
  constructor(snapshot: EnvironmentSnapshot = EMPTY_SNAPSHOT, options: EvaluatorOptions = {}) {
    this._maxUnknown = options.maxUnknownFlags ?? 100;
    this._maxOutcomePairs = options.maxOutcomePairs ?? 10_000;
    this._compile = options;
    this._set(compileTrustedEnvironment(snapshot, this._compile));
  }

  /** The compiled environment currently served. */
  get environment(): CompiledEnvironment {
    return this._env;
  }

  /**
   * Replaces the whole environment (a fresh snapshot). Counts of flags that keep their variants carry on. Returns
   * the keys of the flags that changed: added, removed, or whose configuration or a segment they use differs.
   */
  setEnvironment(snapshot: EnvironmentSnapshot): string[] {
    const before = this._env;
    const after = this._set(compileTrustedEnvironment(snapshot, this._compile));
    const segment = (e: CompiledEnvironment, k: string) => json(e.segments.get(k)?.source);
    return changedKeys(
      before,
      after,
      (a, b) => json(a.config) === json(b.config) && b.segmentKeys.every((k) => segment(before, k) === segment(after, k)),
    );
  }

  /**
   * Applies streamed changes (recompiling only what changed, with the same options) and returns the keys of the
   * flags whose compiled form changed, including flags recompiled because a segment they use changed, and deleted
   * flags; sorted.
   */
  applyChanges(changes: readonly Change[], version?: number): string[] {
    const before = this._env;
    return changedKeys(before, this._set(applyTrustedChanges(before, changes, version)), (a, b) => a === b);
  }

  /** The current flags and segments as a snapshot (e.g. to bootstrap another client). */
  snapshot(): EnvironmentSnapshot {
    const { environment, version, flags, segments } = this._env;
    return { environment, version, flags: [...flags.values()].map((f) => f.config), segments: [...segments.values()].map((s) => s.source) };
  }

  /**
   * Evaluates a flag and counts the evaluation. The default's JS type decides the kind expected (see core
   * `evaluate`). Never throws. Results are frozen and may be shared between calls.
   */
  evaluate<T>(flagKey: string, context: EvaluationContext, defaultValue: T): EvaluationDetail<T> {
    const slot = this._slots.get(flagKey);
    if (slot === undefined) {
      const n = this._unknown.get(flagKey);
      if (n !== undefined || (this._unknown.size < this._maxUnknown && typeof flagKey === 'string')) this._unknown.set(flagKey, (n ?? 0) + 1);
      else this.droppedUnknownEvaluations++;
      return errorDetail(defaultValue, 'FLAG_NOT_FOUND');
    }
    const d = evaluateFlag(slot._flag, context, defaultValue, false, this._countPrerequisite);
    count(slot, d);
    return d;
  }

  /** Counts a flag evaluated as a prerequisite of the flag asked for (the core calls it only for flags that have some). */
  private readonly _countPrerequisite = (flag: CompiledFlag, d: EvaluationDetail): void => {
    const slot = this._slots.get(flag.key);
    if (slot !== undefined) count(slot, d);
  };

  /**
   * Evaluates without counting (e.g. to attribute an outcome to the variant a context gets); `anyKind` skips the
   * default's type check. Never throws.
   */
  peek<T>(flagKey: string, context: EvaluationContext, defaultValue: T, anyKind = false): EvaluationDetail<T> {
    const slot = this._slots.get(flagKey);
    return slot === undefined ? errorDetail(defaultValue, 'FLAG_NOT_FOUND') : evaluateFlag(slot._flag, context, defaultValue, anyKind);
  }

  /**
   * Evaluates every flag for `context` without counting: listing flags (bootstrap, `allFlags`) is not a use of
   * any one of them. Never throws.
   */
  evaluateAll(context: EvaluationContext): Record<string, EvaluationDetail> {
    const out: Record<string, EvaluationDetail> = {};
    for (const key of this._slots.keys()) out[key] = this.peek<JsonValue>(key, context, null, true);
    return out;
  }

  /** Records an outcome for the variant `context` is served (the evaluation itself is not counted). */
  track(flagKey: string, context: EvaluationContext, outcome: Outcome): void {
    this.record(flagKey, this.peek<JsonValue>(flagKey, context, null, true).variant ?? null, outcome);
  }

  /** Records an outcome for `variant` of `flagKey` (null: the caller's default was served). */
  record(flag: string, variant: string | null, outcome: Outcome): void {
    const id = pairId(flag, variant);
    let row = this._outcomes.get(id);
    if (row === undefined) {
      if (this._outcomes.size >= this._maxOutcomePairs) {
        this.droppedOutcomes++;
        return;
      }
      this._outcomes.set(id, (row = { flag, variant, minute: 0, evaluations: 0, outcomes: 0, errors: 0 }));
    }
    row.outcomes++;
    if (outcome.error === true) row.errors++;
    const { latencyMs: ms, value } = outcome;
    if (typeof ms === 'number' && ms >= 0 && ms < Infinity) {
      const h = (row.latency ??= {});
      const b = latencyBucket(ms);
      h[b] = (h[b] ?? 0) + 1;
    }
    if (typeof value === 'number' && Number.isFinite(value)) {
      row.valueSum = (row.valueSum ?? 0) + value;
      row.valueCount = (row.valueCount ?? 0) + 1;
    }
  }

  /**
   * Takes the counts and outcomes since the last drain, labelled with `minuteStart` (epoch ms, a multiple of 60,000), and resets
   * them. One entry per flag and served variant (`variant: null` for evaluations that returned the caller's
   * default), carrying that pair's outcomes; pairs with outcomes but no evaluations have `evaluations: 0`.
   */
  drain(minuteStart: number): VariantStats[] {
    const out: VariantStats[] = [];
    const outcomes = this._outcomes;
    const row = (flag: string, variant: string | null, evaluations: number, reasons: Partial<Record<ReasonKind, number>>) => {
      const id = pairId(flag, variant);
      out.push({ outcomes: 0, errors: 0, ...outcomes.get(id), flag, variant, minute: minuteStart, evaluations, reasons });
      outcomes.delete(id);
    };
    for (const slot of [...this._retired, ...this._slots.values()]) {
      if (!slot._dirty) continue;
      const c = slot._counts;
      for (let v = 0; v <= slot._variantKeys.length; v++) {
        let total = 0;
        const reasons: Partial<Record<ReasonKind, number>> = {};
        for (let r = 0; r < REASONS; r++) {
          const n = c[v * REASONS + r]!;
          if (n > 0) total += reasons[REASON_KINDS[r]!] = n;
        }
        if (total > 0) row(slot._flag.key, v === 0 ? null : slot._variantKeys[v - 1]!, total, reasons);
      }
      c.fill(0);
      slot._dirty = false;
    }
    for (const [flag, n] of this._unknown) row(flag, null, n, { ERROR: n });
    for (const o of outcomes.values()) out.push({ ...o, minute: minuteStart });
    this._outcomes = new Map();
    this._retired = [];
    this._unknown = new Map();
    this.droppedUnknownEvaluations = 0;
    return out;
  }

  /** Serves `env`: points slots at its flags; retires counters whose flag went away or changed its variants. */
  private _set(env: CompiledEnvironment): CompiledEnvironment {
    this._env = env;
    for (const [key, slot] of this._slots) {
      const f = env.flags.get(key);
      if (f !== undefined && json(f.variantKeys) === json(slot._variantKeys)) slot._flag = f;
      else {
        if (slot._dirty) this._retired.push(slot);
        this._slots.delete(key);
      }
    }
    for (const [key, flag] of env.flags) {
      if (!this._slots.has(key)) {
        const counts = new Float64Array((flag.variantKeys.length + 1) * REASONS);
        this._slots.set(key, { _flag: flag, _variantKeys: flag.variantKeys, _counts: counts, _dirty: false });
      }
    }
    return env;
  }
}
