/**
 * Reading the per-minute metrics rows: totals and series for `GET .../metrics` (CONTRACT §5), per-variant totals
 * over a window for the canary guard, and the retention policy.
 */
import { histogramQuantile, mergeHistogram, type SparseHistogram } from '@aviary/sdk/core';
import type { OutcomeTotals } from '../canary/stats.js';
import type { Sql, StorePort } from '../storage/port.js';

const MINUTE = 60_000;

interface Row {
  variant: string;
  minute: number;
  evaluations: number;
  reasons: string;
  outcomes: number;
  errors: number;
  latency: string | null;
  value_sum: number;
  value_count: number;
}

/** Latency percentiles from a merged histogram (null when no latency was reported). */
export interface Percentiles {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** One variant's numbers over a window or a step. */
export interface VariantTotals {
  evaluations: number;
  outcomes: number;
  errors: number;
  /** errors / outcomes, null without outcomes. */
  errorRate: number | null;
  reasons: Record<string, number>;
  latencyMs: Percentiles;
  latencySamples: number;
  value: { sum: number; count: number; mean: number | null };
}

/** The CONTRACT §5 answer. Variant key `(default)` holds evaluations that returned the caller's default. */
export interface FlagMetrics {
  flag: string;
  environment: string;
  from: string;
  to: string;
  stepSeconds: number;
  totals: Record<string, VariantTotals>;
  series: Array<{ start: string; variants: Record<string, VariantTotals> }>;
}

/** The variant key used in answers for evaluations that served the caller's default (stored as ''). */
export const DEFAULT_VARIANT_LABEL = '(default)';

interface Acc {
  evaluations: number;
  outcomes: number;
  errors: number;
  reasons: Record<string, number>;
  latency: SparseHistogram;
  valueSum: number;
  valueCount: number;
}

const emptyAcc = (): Acc => ({ evaluations: 0, outcomes: 0, errors: 0, reasons: {}, latency: {}, valueSum: 0, valueCount: 0 });

function addRow(acc: Acc, r: Row): void {
  acc.evaluations += Number(r.evaluations);
  acc.outcomes += Number(r.outcomes);
  acc.errors += Number(r.errors);
  acc.valueSum += Number(r.value_sum);
  acc.valueCount += Number(r.value_count);
  const reasons = JSON.parse(r.reasons) as Record<string, number>;
  for (const [k, v] of Object.entries(reasons)) acc.reasons[k] = (acc.reasons[k] ?? 0) + v;
  if (r.latency) mergeHistogram(acc.latency, JSON.parse(r.latency) as SparseHistogram);
}

function finish(acc: Acc): VariantTotals {
  let samples = 0;
  for (const k in acc.latency) samples += acc.latency[k] ?? 0;
  return {
    evaluations: acc.evaluations,
    outcomes: acc.outcomes,
    errors: acc.errors,
    errorRate: acc.outcomes > 0 ? acc.errors / acc.outcomes : null,
    reasons: acc.reasons,
    latencyMs: {
      p50: histogramQuantile(acc.latency, 0.5),
      p95: histogramQuantile(acc.latency, 0.95),
      p99: histogramQuantile(acc.latency, 0.99),
    },
    latencySamples: samples,
    value: { sum: acc.valueSum, count: acc.valueCount, mean: acc.valueCount > 0 ? acc.valueSum / acc.valueCount : null },
  };
}

const SQL = {
  window: `SELECT variant, minute, evaluations, reasons, outcomes, errors, latency, value_sum, value_count FROM metrics_minute
    WHERE environment = ? AND flag = ? AND minute >= ? AND minute <= ? ORDER BY minute`,
  variantsWindow: `SELECT variant, minute, evaluations, reasons, outcomes, errors, latency, value_sum, value_count FROM metrics_minute
    WHERE environment = ? AND flag = ? AND variant IN (?, ?) AND minute >= ?`,
  evaluationsByVariant: `SELECT variant, SUM(evaluations) AS evaluations FROM metrics_minute
    WHERE environment = ? AND flag = ? AND minute >= ? AND minute <= ? GROUP BY variant`,
  histogram: 'SELECT latency FROM metrics_minute WHERE environment = ? AND flag = ? AND variant = ? AND minute >= ? AND minute < ?',
  // Chunks (by primary key) so one retention step never holds the event loop or the write lock for long.
  deleteMinutes: `DELETE FROM metrics_minute WHERE (environment, flag, variant, minute) IN
    (SELECT environment, flag, variant, minute FROM metrics_minute WHERE minute < ? LIMIT ?)`,
  deleteFuture: `DELETE FROM metrics_minute WHERE (environment, flag, variant, minute) IN
    (SELECT environment, flag, variant, minute FROM metrics_minute WHERE minute > ? LIMIT ?)`,
  // A loose index scan over the primary key: one seek per distinct (environment, flag), however many minutes each has.
  nextPair: 'SELECT environment, flag FROM metrics_minute WHERE (environment, flag) > (?, ?) ORDER BY environment, flag LIMIT 1',
  nextPairInclusive: 'SELECT environment, flag FROM metrics_minute WHERE (environment, flag) >= (?, ?) ORDER BY environment, flag LIMIT 1',
  pairExists: 'SELECT 1 AS one FROM flags f JOIN environments e ON e.key = ? WHERE f.key = ?',
  // Checked again in the statement itself: a flag (re)created since the scan looked keeps its rows.
  deletePair: `DELETE FROM metrics_minute WHERE (environment, flag, variant, minute) IN
      (SELECT environment, flag, variant, minute FROM metrics_minute WHERE environment = ? AND flag = ? LIMIT ?)
    AND NOT EXISTS (SELECT 1 FROM flags f JOIN environments e ON e.key = ? WHERE f.key = ?)`,
  deleteReports: `DELETE FROM sdk_reports WHERE (token_id, sdk_id, seq) IN
    (SELECT token_id, sdk_id, seq FROM sdk_reports WHERE received_at < ? LIMIT ?)`,
  // Relay batch keys (relay-batch-routes.ts) are kept as long as report keys: a batch older than that holds only
  // reports too old to count.
  deleteRelayBatches: `DELETE FROM relay_batches WHERE (token_id, batch_key) IN
    (SELECT token_id, batch_key FROM relay_batches WHERE received_at < ? LIMIT ?)`,
};

export class MetricsStore {
  constructor(private readonly store: StorePort) {}

  /**
   * Totals per variant over the minutes that overlap [from, to], and a series per `stepMs` (a multiple of a minute).
   * Minutes are whole: a window that starts or ends mid-minute includes that minute (so "now" includes this minute).
   */
  async query(environment: string, flag: string, from: number, to: number, stepMs: number): Promise<FlagMetrics> {
    const start = Math.floor(from / MINUTE) * MINUTE;
    const rows = await this.store.all<Row>(SQL.window, [environment, flag, start, to]);
    const totals = new Map<string, Acc>();
    const steps = new Map<number, Map<string, Acc>>();
    for (const r of rows) {
      const variant = r.variant === '' ? DEFAULT_VARIANT_LABEL : r.variant;
      let t = totals.get(variant);
      if (!t) totals.set(variant, (t = emptyAcc()));
      addRow(t, r);
      const stepStart = start + Math.floor((Number(r.minute) - start) / stepMs) * stepMs;
      let s = steps.get(stepStart);
      if (!s) steps.set(stepStart, (s = new Map()));
      let a = s.get(variant);
      if (!a) s.set(variant, (a = emptyAcc()));
      addRow(a, r);
    }
    return {
      flag,
      environment,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      stepSeconds: stepMs / 1000,
      totals: Object.fromEntries([...totals].map(([k, v]) => [k, finish(v)])),
      series: [...steps]
        .sort((a, b) => a[0] - b[0])
        .map(([t, vs]) => ({ start: new Date(t).toISOString(), variants: Object.fromEntries([...vs].map(([k, v]) => [k, finish(v)])) })),
    };
  }

  /** Canary and control totals since `since` (its minute included), for the guard. */
  async variantTotals(
    environment: string,
    flag: string,
    variants: [string, string],
    since: number,
    sql: Sql = this.store,
  ): Promise<[OutcomeTotals, OutcomeTotals]> {
    const start = Math.floor(since / MINUTE) * MINUTE;
    const out: [OutcomeTotals, OutcomeTotals] = [
      { evaluations: 0, outcomes: 0, errors: 0, latency: {} },
      { evaluations: 0, outcomes: 0, errors: 0, latency: {} },
    ];
    for (const r of await sql.all<Row>(SQL.variantsWindow, [environment, flag, variants[0], variants[1], start])) {
      const t = r.variant === variants[0] ? out[0] : out[1];
      t.evaluations += Number(r.evaluations);
      t.outcomes += Number(r.outcomes);
      t.errors += Number(r.errors);
      if (r.latency) mergeHistogram(t.latency, JSON.parse(r.latency) as SparseHistogram);
    }
    return out;
  }

  /** Evaluations per variant over the minutes in [from, to] (minute starts); '' is the caller's default. */
  async evaluationsByVariant(environment: string, flag: string, from: number, to: number, sql: Sql = this.store): Promise<Map<string, number>> {
    const rows = await sql.all<{ variant: string; evaluations: number }>(SQL.evaluationsByVariant, [environment, flag, from, to]);
    return new Map(rows.map((r) => [r.variant, Number(r.evaluations)]));
  }

  /** One variant's merged latency histogram over the minutes in [from, toExclusive) (minute starts). */
  async variantHistogram(
    environment: string,
    flag: string,
    variant: string,
    from: number,
    toExclusive: number,
    sql: Sql = this.store,
  ): Promise<SparseHistogram> {
    const h: SparseHistogram = {};
    for (const r of await sql.all<{ latency: string | null }>(SQL.histogram, [environment, flag, variant, from, toExclusive])) {
      if (r.latency) mergeHistogram(h, JSON.parse(r.latency) as SparseHistogram);
    }
    return h;
  }

  /**
   * Where the scan for rows of deleted flags stands: the (environment, flag) to go on from, and whether that pair is
   * itself still to look at (its rows were not all deleted); null between passes.
   */
  private orphanCursor: { environment: string; flag: string; inclusive: boolean } | null = null;

  /**
   * One step of retention: deletes up to `chunk` minutes older than `keepMs`, up to `chunk` minutes more than
   * `maxFutureMs` ahead (rows stored before the clock-skew window was enforced), up to `chunk` dedupe records older
   * than `dedupeMs` (a report retried later than that would be counted again; SDKs retry within seconds to minutes),
   * and moves the scan for rows of flags or environments that no longer exist along by up to 100 flags. `more` says
   * that scan is not finished; the caller comes back (after yielding) until everything is 0 and `more` is false.
   * Each delete is its own short transaction. Not reentrant: one caller at a time (metrics-setup.ts serializes).
   */
  async pruneChunk(
    now: number,
    keepMs: number,
    dedupeMs: number,
    maxFutureMs = Infinity,
    chunk = 2000,
  ): Promise<{ minutes: number; reports: number; more: boolean }> {
    let minutes = await this.store.run(SQL.deleteMinutes, [now - keepMs, chunk]);
    if (Number.isFinite(maxFutureMs)) minutes += await this.store.run(SQL.deleteFuture, [now + maxFutureMs, chunk]);
    const reports =
      (await this.store.run(SQL.deleteReports, [now - dedupeMs, chunk])) + (await this.store.run(SQL.deleteRelayBatches, [now - dedupeMs, chunk]));
    let cursor = this.orphanCursor ?? { environment: '', flag: '', inclusive: false };
    let more = true;
    for (let visited = 0; visited < 100 && minutes < chunk; visited++) {
      const next = await this.store.get<{ environment: string; flag: string }>(cursor.inclusive ? SQL.nextPairInclusive : SQL.nextPair, [
        cursor.environment,
        cursor.flag,
      ]);
      if (!next) {
        more = false;
        break;
      }
      cursor = { environment: next.environment, flag: next.flag, inclusive: false };
      if (await this.store.get(SQL.pairExists, [next.environment, next.flag])) continue;
      minutes += await this.store.run(SQL.deletePair, [next.environment, next.flag, chunk - minutes, next.environment, next.flag]);
      // Not all of this flag's rows went: look at it again next time.
      if (minutes >= chunk) cursor.inclusive = true;
    }
    this.orphanCursor = more ? cursor : null;
    return { minutes, reports, more };
  }
}
