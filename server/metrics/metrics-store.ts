/**
 * Reading the per-minute metrics rows: totals and series for `GET .../metrics` (CONTRACT §5), per-variant totals
 * over a window for the canary guard, and the retention policy.
 */
import type Database from 'better-sqlite3';
import { histogramQuantile, mergeHistogram, type SparseHistogram } from '@aviary/sdk/core';
import type { OutcomeTotals } from '../canary/stats.js';

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
  acc.evaluations += r.evaluations;
  acc.outcomes += r.outcomes;
  acc.errors += r.errors;
  acc.valueSum += r.value_sum;
  acc.valueCount += r.value_count;
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

export class MetricsStore {
  private readonly stmts;

  constructor(sqlite: Database.Database) {
    this.stmts = {
      window: sqlite.prepare<[string, string, number, number], Row>(
        `SELECT variant, minute, evaluations, reasons, outcomes, errors, latency, value_sum, value_count FROM metrics_minute
         WHERE environment = ? AND flag = ? AND minute >= ? AND minute <= ? ORDER BY minute`,
      ),
      variantsWindow: sqlite.prepare<[string, string, string, string, number], Row>(
        `SELECT variant, minute, evaluations, reasons, outcomes, errors, latency, value_sum, value_count FROM metrics_minute
         WHERE environment = ? AND flag = ? AND variant IN (?, ?) AND minute >= ?`,
      ),
      // Chunks (by index) so one retention pass never holds the event loop or the write lock for long.
      evaluationsByVariant: sqlite.prepare<[string, string, number, number], { variant: string; evaluations: number }>(
        `SELECT variant, SUM(evaluations) AS evaluations FROM metrics_minute
         WHERE environment = ? AND flag = ? AND minute >= ? AND minute <= ? GROUP BY variant`,
      ),
      histogram: sqlite.prepare<[string, string, string, number, number], { latency: string | null }>(
        'SELECT latency FROM metrics_minute WHERE environment = ? AND flag = ? AND variant = ? AND minute >= ? AND minute < ?',
      ),
      deleteMinutes: sqlite.prepare<[number, number]>(
        'DELETE FROM metrics_minute WHERE rowid IN (SELECT rowid FROM metrics_minute WHERE minute < ? LIMIT ?)',
      ),
      deleteFuture: sqlite.prepare<[number, number]>(
        'DELETE FROM metrics_minute WHERE rowid IN (SELECT rowid FROM metrics_minute WHERE minute > ? LIMIT ?)',
      ),
      // A loose index scan over the primary key: one seek per distinct (environment, flag), however many minutes each has.
      nextPair: sqlite.prepare<[string, string], { environment: string; flag: string }>(
        'SELECT environment, flag FROM metrics_minute WHERE (environment, flag) > (?, ?) ORDER BY environment, flag LIMIT 1',
      ),
      pairExists: sqlite.prepare<[string, string], { one: number }>('SELECT 1 AS one FROM flags f JOIN environments e ON e.key = ? WHERE f.key = ?'),
      deletePair: sqlite.prepare<[string, string, number]>(
        'DELETE FROM metrics_minute WHERE rowid IN (SELECT rowid FROM metrics_minute WHERE environment = ? AND flag = ? LIMIT ?)',
      ),
      deleteReports: sqlite.prepare<[number, number]>(
        'DELETE FROM sdk_reports WHERE rowid IN (SELECT rowid FROM sdk_reports WHERE received_at < ? LIMIT ?)',
      ),
    };
  }

  /**
   * Totals per variant over the minutes that overlap [from, to], and a series per `stepMs` (a multiple of a minute).
   * Minutes are whole: a window that starts or ends mid-minute includes that minute (so "now" includes this minute).
   */
  query(environment: string, flag: string, from: number, to: number, stepMs: number): FlagMetrics {
    const start = Math.floor(from / MINUTE) * MINUTE;
    const rows = this.stmts.window.all(environment, flag, start, to);
    const totals = new Map<string, Acc>();
    const steps = new Map<number, Map<string, Acc>>();
    for (const r of rows) {
      const variant = r.variant === '' ? DEFAULT_VARIANT_LABEL : r.variant;
      let t = totals.get(variant);
      if (!t) totals.set(variant, (t = emptyAcc()));
      addRow(t, r);
      const stepStart = start + Math.floor((r.minute - start) / stepMs) * stepMs;
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
  variantTotals(environment: string, flag: string, variants: [string, string], since: number): [OutcomeTotals, OutcomeTotals] {
    const start = Math.floor(since / MINUTE) * MINUTE;
    const out: [OutcomeTotals, OutcomeTotals] = [
      { evaluations: 0, outcomes: 0, errors: 0, latency: {} },
      { evaluations: 0, outcomes: 0, errors: 0, latency: {} },
    ];
    for (const r of this.stmts.variantsWindow.all(environment, flag, variants[0], variants[1], start)) {
      const t = r.variant === variants[0] ? out[0] : out[1];
      t.evaluations += r.evaluations;
      t.outcomes += r.outcomes;
      t.errors += r.errors;
      if (r.latency) mergeHistogram(t.latency, JSON.parse(r.latency) as SparseHistogram);
    }
    return out;
  }

  /** Evaluations per variant over the minutes in [from, to] (minute starts); '' is the caller's default. */
  evaluationsByVariant(environment: string, flag: string, from: number, to: number): Map<string, number> {
    return new Map(this.stmts.evaluationsByVariant.all(environment, flag, from, to).map((r) => [r.variant, r.evaluations]));
  }

  /** One variant's merged latency histogram over the minutes in [from, toExclusive) (minute starts). */
  variantHistogram(environment: string, flag: string, variant: string, from: number, toExclusive: number): SparseHistogram {
    const h: SparseHistogram = {};
    for (const r of this.stmts.histogram.all(environment, flag, variant, from, toExclusive)) {
      if (r.latency) mergeHistogram(h, JSON.parse(r.latency) as SparseHistogram);
    }
    return h;
  }

  /** Where the scan for rows of deleted flags stands: the last (environment, flag) looked at; null between passes. */
  private orphanCursor: [string, string] | null = null;

  /**
   * One step of retention: deletes up to `chunk` minutes older than `keepMs`, up to `chunk` minutes more than
   * `maxFutureMs` ahead (rows stored before the clock-skew window was enforced), up to `chunk` dedupe records older
   * than `dedupeMs` (a report retried later than that would be counted again; SDKs retry within seconds to minutes),
   * and moves the scan for rows of flags or environments that no longer exist along by up to 100 flags. `more` says
   * that scan is not finished; the caller comes back (after yielding) until everything is 0 and `more` is false.
   */
  pruneChunk(
    now: number,
    keepMs: number,
    dedupeMs: number,
    maxFutureMs = Infinity,
    chunk = 2000,
  ): { minutes: number; reports: number; more: boolean } {
    let minutes = this.stmts.deleteMinutes.run(now - keepMs, chunk).changes;
    if (Number.isFinite(maxFutureMs)) minutes += this.stmts.deleteFuture.run(now + maxFutureMs, chunk).changes;
    const reports = this.stmts.deleteReports.run(now - dedupeMs, chunk).changes;
    let [env, flag] = this.orphanCursor ?? ['', ''];
    let more = true;
    for (let visited = 0; visited < 100 && minutes < chunk; visited++) {
      const next = this.stmts.nextPair.get(env, flag);
      if (!next) {
        more = false;
        break;
      }
      ({ environment: env, flag } = next);
      if (this.stmts.pairExists.get(env, flag)) continue;
      const deleted = this.stmts.deletePair.run(env, flag, chunk - minutes).changes;
      minutes += deleted;
      // Not all of this flag's rows went: look at it again next time.
      if (minutes >= chunk) flag = flag.slice(0, -1);
    }
    this.orphanCursor = more ? [env, flag] : null;
    return { minutes, reports, more };
  }
}
