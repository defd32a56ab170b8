/**
 * Turns `GET .../metrics` (CONTRACT §5: totals plus a series) into per-variant chart series. Each series row is
 * `{ start, variants: { <variant>: totals } }`, as the spec's FlagMetrics says.
 */
import { timeMs } from '@aviary/api-client';
import type { FlagMetrics, VariantTotals } from './types.js';

export interface VariantSeries {
  /** Epoch seconds of each step. */
  times: number[];
  errorRate: Record<string, Array<number | null>>;
  p95: Record<string, Array<number | null>>;
  outcomes: Record<string, Array<number | null>>;
}

export function seriesByVariant(m: FlagMetrics, variants: string[]): VariantSeries {
  const rows = new Map<number, Record<string, VariantTotals>>();
  for (const row of m.series) {
    const t = timeMs(row.start);
    if (Number.isNaN(t)) continue;
    rows.set(t, { ...rows.get(t), ...row.variants });
  }
  // Only steps with outcomes: a chart of error rates over steps nobody reported would be all gaps.
  const times = [...rows.keys()].filter((t) => variants.some((v) => (rows.get(t)?.[v]?.outcomes ?? 0) > 0)).sort((a, b) => a - b);
  const out: VariantSeries = { times: times.map((t) => Math.floor(t / 1000)), errorRate: {}, p95: {}, outcomes: {} };
  for (const v of variants) {
    out.errorRate[v] = times.map((t) => {
      const x = rows.get(t)?.[v];
      if (!x || x.outcomes === 0) return null;
      return x.errorRate ?? x.errors / x.outcomes;
    });
    out.p95[v] = times.map((t) => rows.get(t)?.[v]?.latencyMs.p95 ?? null);
    out.outcomes[v] = times.map((t) => rows.get(t)?.[v]?.outcomes ?? null);
  }
  return out;
}
