/**
 * The client's flags: the environment's current snapshot, kept up to date by hydrate and delta messages, evaluated
 * locally through the core, with per-variant evaluation counting. Also works out which flags a change affects, so
 * `change` events name them (a segment change affects every flag whose rules use the segment).
 */
import type {
  EnvironmentSnapshot,
  EvaluationContext,
  EvaluationDetail,
  FlagConfig,
  FlagKind,
  JsonValue,
  ReasonKind,
  Segment,
} from './core/types.js';
import type { Change, VariantStats } from './protocol.js';

/** Flags whose rules (or segments' use) mention a segment: what a segment change affects. */
function segmentsUsed(flag: FlagConfig): string[] {
  const out: string[] = [];
  for (const r of flag.state.rules) for (const c of r.conditions) if ('segment' in c) out.push(c.segment);
  return out;
}

export class FlagStore {
  private flags = new Map<string, FlagConfig>();
  private segments = new Map<string, Segment>();
  private env = '';
  version: number | undefined;
  private counts = new Map<string, VariantStats>();
  /** Count rows not kept because the per-interval limit of (flag, variant) pairs was reached. */
  droppedCounts = 0;

  constructor(private readonly maxCountRows = 10_000) {}

  get environment(): string {
    return this.env;
  }

  get ready(): boolean {
    return this.version !== undefined;
  }

  /** Replaces everything with `snapshot`; returns the keys of flags that changed (for `change` events). */
  load(snapshot: EnvironmentSnapshot): string[] {
    const before = this.flags;
    const beforeSegments = this.segments;
    this.flags = new Map(snapshot.flags.map((f) => [f.key, f]));
    this.segments = new Map(snapshot.segments.map((s) => [s.key, s]));
    this.env = snapshot.environment;
    this.version = snapshot.version;
    this.recompile();
    const changedSegments = new Set<string>();
    for (const [k, s] of this.segments) if (JSON.stringify(beforeSegments.get(k)) !== JSON.stringify(s)) changedSegments.add(k);
    for (const k of beforeSegments.keys()) if (!this.segments.has(k)) changedSegments.add(k);
    const changed = new Set<string>();
    for (const [k, f] of this.flags) {
      if (JSON.stringify(before.get(k)) !== JSON.stringify(f) || segmentsUsed(f).some((s) => changedSegments.has(s))) changed.add(k);
    }
    for (const k of before.keys()) if (!this.flags.has(k)) changed.add(k);
    return [...changed].sort();
  }

  /** Applies one delta's changes; returns the keys of flags affected. */
  apply(version: number, changes: Change[]): string[] {
    const changed = new Set<string>();
    const changedSegments = new Set<string>();
    for (const c of changes) {
      switch (c.type) {
        case 'flag.upsert':
          this.flags.set(c.flag.key, c.flag);
          changed.add(c.flag.key);
          break;
        case 'flag.delete':
          if (this.flags.delete(c.key)) changed.add(c.key);
          break;
        case 'segment.upsert':
          this.segments.set(c.segment.key, c.segment);
          changedSegments.add(c.segment.key);
          break;
        case 'segment.delete':
          this.segments.delete(c.key);
          changedSegments.add(c.key);
          break;
      }
    }
    if (changedSegments.size > 0) {
      for (const [k, f] of this.flags) if (segmentsUsed(f).some((s) => changedSegments.has(s))) changed.add(k);
    }
    this.version = version;
    this.recompile();
    return [...changed].sort();
  }

  /** The current state as a snapshot (e.g. to bootstrap another client). */
  snapshot(): EnvironmentSnapshot {
    return { environment: this.env, version: this.version ?? 0, flags: [...this.flags.values()], segments: [...this.segments.values()] };
  }

  keys(): string[] {
    return [...this.flags.keys()];
  }

  /**
   * Evaluates a flag. `expected` is the kind the caller's default implies (undefined: any kind). Counted unless
   * `count` is false. Never throws.
   */
  evaluate(key: string, context: EvaluationContext, defaultValue: JsonValue, expected: FlagKind | undefined, count: boolean): EvaluationDetail {
    let d: EvaluationDetail;
    try {
      d = this.evaluateUncounted(key, context, defaultValue, expected);
    } catch {
      d = { value: defaultValue, reason: { kind: 'ERROR', errorCode: 'GENERAL' }, errorCode: 'GENERAL' };
    }
    if (count) this.count(key, d.variant ?? null, d.reason.kind);
    return d;
  }

  /** Counts an evaluation the store did not perform (e.g. NOT_READY before any snapshot). */
  count(flag: string, variant: string | null, reason: ReasonKind): void {
    const id = variant === null ? flag + '\u0000' : flag + '\u0000' + variant;
    let row = this.counts.get(id);
    if (!row) {
      if (this.counts.size >= this.maxCountRows) {
        this.droppedCounts++;
        return;
      }
      row = { flag, variant, minute: 0, evaluations: 0, reasons: {}, outcomes: 0, errors: 0 };
      this.counts.set(id, row);
    }
    row.evaluations++;
    const r = row.reasons!;
    r[reason] = (r[reason] ?? 0) + 1;
  }

  /** Takes the evaluation counts since the last drain, stamped with `minute`. */
  drain(minute: number): VariantStats[] {
    const rows = [...this.counts.values()];
    this.counts = new Map();
    for (const r of rows) r.minute = minute;
    return rows;
  }

  // TEMPORARY until the core's compiled evaluator lands (sdk/evaluator.ts): targets, kill switch and a fixed
  // fallthrough only.
  private recompile(): void {}

  private evaluateUncounted(key: string, context: EvaluationContext, defaultValue: JsonValue, expected: FlagKind | undefined): EvaluationDetail {
    const flag = this.flags.get(key);
    if (!flag) return { value: defaultValue, reason: { kind: 'ERROR', errorCode: 'FLAG_NOT_FOUND' }, errorCode: 'FLAG_NOT_FOUND' };
    if (expected !== undefined && expected !== flag.kind) return { value: defaultValue, reason: { kind: 'ERROR', errorCode: 'WRONG_TYPE' }, errorCode: 'WRONG_TYPE' };
    const serve = (variant: string, reason: EvaluationDetail['reason']): EvaluationDetail => {
      const v = flag.variants.find((x) => x.key === variant);
      if (!v) return { value: defaultValue, reason: { kind: 'ERROR', errorCode: 'MALFORMED_FLAG' }, errorCode: 'MALFORMED_FLAG' };
      return { value: v.value, variant, reason };
    };
    if (!flag.state.enabled) return serve(flag.state.offVariant, { kind: 'OFF' });
    for (const t of flag.state.targets) if (context.key !== undefined && t.keys.includes(context.key)) return serve(t.variant, { kind: 'TARGET_MATCH' });
    const f = flag.state.fallthrough;
    if ('variant' in f) return serve(f.variant, { kind: 'FALLTHROUGH' });
    return serve(f.rollout.weights[0]!.variant, { kind: 'FALLTHROUGH', inRollout: true });
  }
}
