/**
 * Outcomes recorded with `track()` / `measure()`, aggregated per flag and variant until the next report: counts,
 * errors, a latency histogram with the shared log-scale buckets (so reports from many SDKs merge exactly) and the
 * sum of numeric values. Memory is bounded by the number of distinct (flag, variant) pairs.
 */
import { latencyBucket, type SparseHistogram } from './core/histogram.js';

/** The outcome of one unit of work done under a flag. */
export interface Outcome {
  /** The work failed. */
  error?: boolean;
  /** How long it took, in milliseconds. */
  latencyMs?: number;
  /** A numeric measurement (e.g. revenue, items in cart): summed per variant. */
  value?: number;
}

export interface OutcomeAggregate {
  flag: string;
  variant: string | null;
  outcomes: number;
  errors: number;
  latency?: SparseHistogram;
  valueSum?: number;
  valueCount?: number;
}

/** One key per (flag, variant) pair; `variant` null is the caller's default (variant keys are never empty). */
export function pairId(flag: string, variant: string | null): string {
  return flag + '\u0000' + (variant ?? '');
}

export class OutcomeRecorder {
  private _pairs = new Map<string, OutcomeAggregate>();
  /** Outcomes not recorded because the pair limit was reached (reported so that loss is visible). */
  dropped = 0;

  constructor(private readonly _maxPairs = 10_000) {}

  record(flag: string, variant: string | null, outcome: Outcome): void {
    const id = pairId(flag, variant);
    let a = this._pairs.get(id);
    if (!a) {
      if (this._pairs.size >= this._maxPairs) {
        this.dropped++;
        return;
      }
      a = { flag, variant, outcomes: 0, errors: 0 };
      this._pairs.set(id, a);
    }
    a.outcomes++;
    if (outcome.error === true) a.errors++;
    const ms = outcome.latencyMs;
    if (typeof ms === 'number' && Number.isFinite(ms) && ms >= 0) {
      const h = (a.latency ??= {});
      const b = latencyBucket(ms);
      h[b] = (h[b] ?? 0) + 1;
    }
    const v = outcome.value;
    if (typeof v === 'number' && Number.isFinite(v)) {
      a.valueSum = (a.valueSum ?? 0) + v;
      a.valueCount = (a.valueCount ?? 0) + 1;
    }
  }

  /** Everything recorded since the last drain. */
  drain(): OutcomeAggregate[] {
    const out = [...this._pairs.values()];
    this._pairs = new Map();
    return out;
  }
}
