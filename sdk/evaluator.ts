/**
 * The SDK's hot evaluation path: holds a compiled environment, evaluates locally, and counts evaluations per flag,
 * variant and reason on preallocated counters (an integer increment per call, no allocation beyond the result;
 * results that do not carry a bucket are shared frozen objects). `drain` hands the counts over as the
 * `VariantStats` of `POST /sdk/v1/metrics`.
 */
// Imported by file, not through core/index.ts: the SDK compiles flags the server already validated, so the
// validator (and compile-checked.ts) must stay out of the browser bundle.
import {
  applyTrustedChanges,
  compileTrustedEnvironment,
  REASON_KINDS,
  type CompiledEnvironment,
  type CompiledFlag,
} from './core/compile.js';
import { evaluateFlag, lastOutcome } from './core/evaluate.js';
import type { EnvironmentSnapshot, EvaluationContext, EvaluationDetail, JsonValue, ReasonKind } from './core/types.js';
import type { Change, VariantStats } from './protocol.js';

const REASONS = REASON_KINDS.length;
const FLAG_NOT_FOUND = 'FLAG_NOT_FOUND' as const;

/** Counters of one compiled flag's variants; row 0 counts evaluations that returned the caller's default. */
interface Slot {
  flag: CompiledFlag;
  readonly key: string;
  readonly variantKeys: readonly string[];
  /** `(variantIndex + 1) * REASONS + reasonIndex`. Float64 so a busy minute cannot overflow. */
  counts: Float64Array;
  dirty: boolean;
}

/** Options of an `Evaluator`. */
export interface EvaluatorOptions {
  /**
   * How many distinct unknown flag keys are counted between two drains (default 100). Evaluations of further
   * unknown keys still answer FLAG_NOT_FOUND but are only added to `droppedUnknownEvaluations`, so a caller that
   * asks for ever-new keys cannot grow memory without bound.
   */
  maxUnknownFlags?: number;
}

const EMPTY_SNAPSHOT: EnvironmentSnapshot = { environment: '', version: 0, flags: [], segments: [] };

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Local evaluation with per-variant counting. Not thread-shared: one per client.
 */
export class Evaluator {
  private _env: CompiledEnvironment;
  private readonly _slots = new Map<string, Slot>();
  /** Counters of flags deleted or whose variants changed since the last drain; reported once, then dropped. */
  private _retired: Slot[] = [];
  private _unknown = new Map<string, number>();
  private readonly _maxUnknown: number;
  /** Evaluations of unknown flag keys beyond `maxUnknownFlags` since the last drain (not reported per key). */
  droppedUnknownEvaluations = 0;

  /** @param env a compiled environment or a snapshot to compile (default: empty, every flag is unknown) */
  constructor(env: CompiledEnvironment | EnvironmentSnapshot = EMPTY_SNAPSHOT, options: EvaluatorOptions = {}) {
    this._maxUnknown = options.maxUnknownFlags ?? 100;
    this._env = isCompiled(env) ? env : compileTrustedEnvironment(env);
    this._reconcile();
  }

  /** The compiled environment currently served. */
  get environment(): CompiledEnvironment {
    return this._env;
  }

  /** Replaces the whole environment (a fresh snapshot). Counts of flags that keep their variants carry on. */
  setEnvironment(env: CompiledEnvironment | EnvironmentSnapshot): void {
    this._env = isCompiled(env) ? env : compileTrustedEnvironment(env);
    this._reconcile();
  }

  /**
   * Applies streamed changes (recompiling only what changed) and returns the keys of the flags whose compiled
   * form changed, including flags recompiled because a segment they use changed, and deleted flags.
   */
  applyChanges(changes: readonly Change[], version?: number): string[] {
    const before = this._env;
    this._env = applyTrustedChanges(before, changes, version);
    const changed: string[] = [];
    for (const [key, f] of this._env.flags) if (before.flags.get(key) !== f) changed.push(key);
    for (const key of before.flags.keys()) if (!this._env.flags.has(key)) changed.push(key);
    this._reconcile();
    return changed;
  }

  /**
   * Evaluates a flag and counts the evaluation. The default's JS type decides the kind expected (see core
   * `evaluate`). Never throws. Results are frozen and may be shared between calls.
   */
  evaluate<T>(flagKey: string, context: EvaluationContext, defaultValue: T): EvaluationDetail<T> {
    const slot = this._slots.get(flagKey);
    if (slot === undefined) return this._unknownFlag(flagKey, defaultValue);
    const d = evaluateFlag(slot.flag, context, defaultValue);
    slot.counts[(lastOutcome.variant + 1) * REASONS + lastOutcome.reason]!++;
    slot.dirty = true;
    return d;
  }

  /** Evaluates without counting (e.g. to attribute an outcome to the variant a context gets). Never throws. */
  peek<T>(flagKey: string, context: EvaluationContext, defaultValue: T): EvaluationDetail<T> {
    const slot = this._slots.get(flagKey);
    if (slot === undefined) return { value: defaultValue, reason: { kind: 'ERROR', errorCode: FLAG_NOT_FOUND }, errorCode: FLAG_NOT_FOUND };
    return evaluateFlag(slot.flag, context, defaultValue);
  }

  /**
   * Evaluates every flag for `context` without counting: listing flags (bootstrap, `allFlags`) is not a use of
   * any one of them. Never throws.
   */
  evaluateAll(context: EvaluationContext): Record<string, EvaluationDetail> {
    const out: Record<string, EvaluationDetail> = {};
    for (const [key, slot] of this._slots) out[key] = evaluateFlag<JsonValue>(slot.flag, context, null, true);
    return out;
  }

  /**
   * Takes the counts since the last drain, labelled with `minuteStart` (epoch ms, a multiple of 60,000), and resets
   * them. One entry per flag and served variant (`variant: null` for evaluations that returned the caller's
   * default); outcome fields are 0 (outcomes are counted by the client's `track`).
   */
  drain(minuteStart: number): VariantStats[] {
    const out: VariantStats[] = [];
    for (const slot of this._retired) this._emit(slot, minuteStart, out);
    this._retired = [];
    for (const slot of this._slots.values()) {
      if (!slot.dirty) continue;
      this._emit(slot, minuteStart, out);
      slot.counts.fill(0);
      slot.dirty = false;
    }
    for (const [flag, n] of this._unknown) {
      out.push({ flag, variant: null, minute: minuteStart, evaluations: n, reasons: { ERROR: n }, outcomes: 0, errors: 0 });
    }
    this._unknown = new Map();
    this.droppedUnknownEvaluations = 0;
    return out;
  }

  private _emit(slot: Slot, minute: number, out: VariantStats[]): void {
    const c = slot.counts;
    for (let row = 0; row <= slot.variantKeys.length; row++) {
      let total = 0;
      let reasons: Partial<Record<ReasonKind, number>> | undefined;
      for (let r = 0; r < REASONS; r++) {
        const n = c[row * REASONS + r]!;
        if (n === 0) continue;
        total += n;
        (reasons ??= {})[REASON_KINDS[r]!] = n;
      }
      if (total === 0) continue;
      const variant = row === 0 ? null : slot.variantKeys[row - 1]!;
      out.push({ flag: slot.key, variant, minute, evaluations: total, reasons: reasons!, outcomes: 0, errors: 0 });
    }
  }

  private _unknownFlag<T>(flagKey: string, defaultValue: T): EvaluationDetail<T> {
    const n = this._unknown.get(flagKey);
    if (n !== undefined) this._unknown.set(flagKey, n + 1);
    else if (this._unknown.size < this._maxUnknown && typeof flagKey === 'string') this._unknown.set(flagKey, 1);
    else this.droppedUnknownEvaluations++;
    return { value: defaultValue, reason: { kind: 'ERROR', errorCode: FLAG_NOT_FOUND }, errorCode: FLAG_NOT_FOUND };
  }

  /** Points slots at the current compiled flags; retires counters whose flag went away or changed its variants. */
  private _reconcile(): void {
    const flags = this._env.flags;
    for (const [key, slot] of this._slots) {
      const f = flags.get(key);
      if (f === undefined || !sameKeys(f.variantKeys, slot.variantKeys)) {
        if (slot.dirty) this._retired.push(slot);
        this._slots.delete(key);
      } else slot.flag = f;
    }
    for (const [key, f] of flags) {
      if (this._slots.has(key)) continue;
      this._slots.set(key, {
        flag: f,
        key,
        variantKeys: f.variantKeys,
        counts: new Float64Array((f.variantKeys.length + 1) * REASONS),
        dirty: false,
      });
    }
  }
}

function isCompiled(env: CompiledEnvironment | EnvironmentSnapshot): env is CompiledEnvironment {
  return env !== null && typeof env === 'object' && env.flags instanceof Map;
}
