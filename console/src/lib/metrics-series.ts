/**
 * Turns `GET .../metrics` (CONTRACT §5: totals plus a series) into per-variant chart series. The series rows are
 * `{ start, variants: { <variant>: totals } }`; flat rows (`{ minute|start, variant, ... }`) are read too.
 */
import type { FlagMetrics } from './types.js';

export interface VariantSeries {
  /** Epoch seconds of each step. */
  times: number[];
  errorRate: Record<string, Array<number | null>>;
  p95: Record<string, Array<number | null>>;
  outcomes: Record<string, Array<number | null>>;
}

type Totals = { outcomes?: number; errors?: number; errorRate?: number | null; latencyMs?: { p95?: number | null } };

function toTime(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}

export function seriesByVariant(m: FlagMetrics, variants: string[]): VariantSeries {
  const rows = new Map<number, Record<string, Totals>>();
  for (const raw of m.series as Array<Record<string, unknown>>) {
    const t = toTime(raw.start ?? raw.minute ?? raw.at ?? raw.t);
    if (t === null) continue;
    const row = rows.get(t) ?? {};
    if (typeof raw.variants === 'object' && raw.variants !== null) Object.assign(row, raw.variants as Record<string, Totals>);
    else if (typeof raw.variant === 'string') row[raw.variant] = raw as Totals;
    rows.set(t, row);
  }
  // Only steps with outcomes: a chart of error rates over steps nobody reported would be all gaps.
  const times = [...rows.keys()].filter((t) => variants.some((v) => (rows.get(t)?.[v]?.outcomes ?? 0) > 0)).sort((a, b) => a - b);
  const out: VariantSeries = { times: times.map((t) => Math.floor(t / 1000)), errorRate: {}, p95: {}, outcomes: {} };
  for (const v of variants) {
    out.errorRate[v] = times.map((t) => {
      const x = rows.get(t)?.[v];
      if (!x || !x.outcomes) return null;
      return typeof x.errorRate === 'number' ? x.errorRate : (x.errors ?? 0) / x.outcomes;
    });
    out.p95[v] = times.map((t) => rows.get(t)?.[v]?.latencyMs?.p95 ?? null);
    out.outcomes[v] = times.map((t) => rows.get(t)?.[v]?.outcomes ?? null);
  }
  return out;
}
