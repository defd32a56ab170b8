/**
 * The client's flags: the environment's current snapshot, kept up to date by hydrate and delta messages and
 * evaluated locally through the core's counting `Evaluator`. Also works out which flags a snapshot changed, so
 * `change` events name them (deltas: the evaluator reports it, including flags affected by a segment change).
 */
import { evaluateFlag } from './core/evaluate.js';
import type { EnvironmentSnapshot, EvaluationContext, EvaluationDetail, FlagConfig, JsonValue, Segment } from './core/types.js';
import { Evaluator } from './evaluator.js';
import type { Change, VariantStats } from './protocol.js';

const NOT_FOUND: EvaluationDetail<null> = Object.freeze({
  value: null,
  reason: Object.freeze({ kind: 'ERROR', errorCode: 'FLAG_NOT_FOUND' }),
  errorCode: 'FLAG_NOT_FOUND',
}) as EvaluationDetail<null>;

export class FlagStore {
  private _flags = new Map<string, FlagConfig>();
  private _segments = new Map<string, Segment>();
  private _env = '';
  private readonly _evaluator: Evaluator;
  /** The applied environment version; undefined until a snapshot is in place. */
  version: number | undefined;

  constructor(maxUnknownFlags?: number) {
    this._evaluator = new Evaluator(undefined, maxUnknownFlags !== undefined ? { maxUnknownFlags } : {});
  }

  get environment(): string {
    return this._env;
  }

  get ready(): boolean {
    return this.version !== undefined;
  }

  /** Evaluations not counted per key since the last drain (unknown-flag keys beyond the limit). */
  get droppedCounts(): number {
    return this._evaluator.droppedUnknownEvaluations;
  }

  /** Replaces everything with `snapshot`; returns the keys of flags that changed (for `change` events). */
  load(snapshot: EnvironmentSnapshot): string[] {
    const before = this._flags;
    const beforeSegments = this._segments;
    this._evaluator.setEnvironment(snapshot);
    this._flags = new Map(snapshot.flags.map((f) => [f.key, f]));
    this._segments = new Map(snapshot.segments.map((s) => [s.key, s]));
    this._env = snapshot.environment;
    this.version = snapshot.version;
    const changedSegments = new Set<string>();
    for (const [k, s] of this._segments) if (JSON.stringify(beforeSegments.get(k)) !== JSON.stringify(s)) changedSegments.add(k);
    for (const k of beforeSegments.keys()) if (!this._segments.has(k)) changedSegments.add(k);
    const changed = new Set<string>();
    for (const [k, f] of this._flags) {
      if (JSON.stringify(before.get(k)) !== JSON.stringify(f)) changed.add(k);
      else if (changedSegments.size > 0 && f.state.rules.some((r) => r.conditions.some((c) => 'segment' in c && changedSegments.has(c.segment)))) changed.add(k);
    }
    for (const k of before.keys()) if (!this._flags.has(k)) changed.add(k);
    return [...changed].sort();
  }

  /** Applies one delta's changes; returns the keys of flags affected. */
  apply(version: number, changes: Change[]): string[] {
    const changed = this._evaluator.applyChanges(changes, version);
    for (const c of changes) {
      if (c.type === 'flag.upsert') this._flags.set(c.flag.key, c.flag);
      else if (c.type === 'flag.delete') this._flags.delete(c.key);
      else if (c.type === 'segment.upsert') this._segments.set(c.segment.key, c.segment);
      else this._segments.delete(c.key);
    }
    this.version = version;
    return changed.sort();
  }

  /** The current state as a snapshot (e.g. to bootstrap another client). */
  snapshot(): EnvironmentSnapshot {
    return { environment: this._env, version: this.version ?? 0, flags: [...this._flags.values()], segments: [...this._segments.values()] };
  }

  /** Evaluates and counts. The default's JS type decides the kind expected. Never throws. */
  evaluate<T>(key: string, context: EvaluationContext, defaultValue: T): EvaluationDetail<T> {
    return this._evaluator.evaluate(key, context, defaultValue);
  }

  /** The variant `context` is served, whatever the flag's kind, without counting (for outcomes). */
  servedVariant(key: string, context: EvaluationContext): string | null {
    const flag = this._evaluator.environment.flags.get(key);
    if (!flag) return null;
    return evaluateFlag<JsonValue>(flag, context, null, true).variant ?? null;
  }

  /** Every flag for `context`, not counted (listing flags is not a use of any one of them). */
  evaluateAll(context: EvaluationContext): Record<string, EvaluationDetail> {
    return this._evaluator.evaluateAll(context);
  }

  /** Takes the evaluation counts since the last drain, stamped with `minute`. */
  drain(minute: number): VariantStats[] {
    return this._evaluator.drain(minute);
  }
}

export { NOT_FOUND };
