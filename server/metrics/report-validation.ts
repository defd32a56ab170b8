/**
 * What `POST /sdk/v1/metrics` checks beyond the OpenAPI schema of `MetricsReport` (sdk/protocol.ts), which fastify
 * enforces first. A rejected report is dropped by the SDK (a 4xx is final), so only reports that can never be counted
 * are rejected.
 *
 * Two steps: `reportProblems` checks what the schema cannot say (a report that fails is refused whole), then `screenReport`
 * checks each row against what the SDK key may report (CONTRACT §16): a flag and variant its environment serves, a
 * minute within the clock-skew window, counts within bounds. Rows that fail are dropped, not counted, and named in
 * the answer; the rest of the report is counted. A legitimate SDK does send such rows (a flag deleted or a variant
 * removed since it evaluated, a flag key the application asks for that does not exist, a report retried after a long
 * outage), and refusing its whole report would lose the good rows with it. A report with no countable row left is
 * refused (400), so the SDK drops it: nothing in it could ever be counted.
 */
import { LATENCY_BUCKETS, type ValidationIssue } from '@aviary/sdk/core';
import type { MetricsReport, VariantStats } from '@aviary/sdk/protocol';
import type { EnvironmentCatalog } from './flag-catalog.js';

const MAX_ISSUES = 20;

/**
 * What the `MetricsReport` schema (which fastify has already enforced: fields, types, bounds) cannot say: a row's
 * minute is the start of a minute, it has no more errors or latency samples than outcomes, and its latency buckets
 * exist. Answers the first (up to 20) problems; a report with any is refused whole (it was never valid).
 */
export function reportProblems(report: MetricsReport): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  for (let i = 0; i < report.stats.length && issues.length < MAX_ISSUES; i++) {
    const s = report.stats[i]!;
    const path = `/stats/${i}`;
    if (s.minute % 60_000 !== 0) issues.push({ path: `${path}/minute`, message: 'must be epoch milliseconds at the start of a minute' });
    if (s.errors > s.outcomes) issues.push({ path: `${path}/errors`, message: 'cannot exceed outcomes' });
    if (s.latency !== undefined) {
      let samples = 0;
      for (const [k, v] of Object.entries(s.latency)) {
        if (Number(k) >= LATENCY_BUCKETS) issues.push({ path: `${path}/latency/${k}`, message: `bucket index must be 0–${LATENCY_BUCKETS - 1}` });
        samples += v;
      }
      if (samples > s.outcomes) issues.push({ path: `${path}/latency`, message: 'holds more samples than outcomes' });
    }
  }
  return issues.slice(0, MAX_ISSUES);
}

export type { VariantStats };

/** What one SDK key may report (docs/operations.md, "SDK-key limits"). */
export interface ReportLimits {
  /** How far a row's minute may be ahead of the server's clock (ms). Default 5 minutes. */
  maxFutureMs: number;
  /** How far a row's minute may be behind it (ms). Default 24 hours: the exactly-once horizon. */
  maxPastMs: number;
  /** Largest count in one row (evaluations, outcomes, errors, a reason, a latency bucket, valueCount), server-side keys. */
  maxCountServerSide: number;
  /** The same for client-side keys: one browser or app instance. */
  maxCountClientSide: number;
}

export const DEFAULT_REPORT_LIMITS: ReportLimits = {
  maxFutureMs: 5 * 60_000,
  maxPastMs: 24 * 3_600_000,
  maxCountServerSide: 100_000_000,
  maxCountClientSide: 1_000_000,
};

/** Why a row was dropped: the name of the limit it broke (Prometheus label and problem `limit`). */
export type DropReason = 'unknown-flag' | 'unknown-variant' | 'clock-skew' | 'too-old' | 'count-limit';

/** The rows of a report that may be counted, and what was dropped (the first 20 named by path). */
export interface ScreenedReport {
  kept: VariantStats[];
  dropped: number;
  byReason: Partial<Record<DropReason, number>>;
  issues: Array<ValidationIssue & { limit: DropReason }>;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The first count of a row above `max`, as [field path, value], or null. */
function countAbove(s: VariantStats, max: number): [string, number] | null {
  for (const k of ['evaluations', 'outcomes', 'errors', 'valueCount'] as const) if ((s[k] ?? 0) > max) return [k, s[k]!];
  if (s.reasons)
    for (const k in s.reasons)
      if ((s.reasons[k as keyof typeof s.reasons] ?? 0) > max) return [`reasons/${k}`, s.reasons[k as keyof typeof s.reasons]!];
  if (s.latency) for (const k in s.latency) if ((s.latency[k] ?? 0) > max) return [`latency/${k}`, s.latency[k]!];
  return null;
}

/**
 * Checks each row of a shape-valid report against what its SDK key may report: `catalog` is the key's environment,
 * `now` the server's clock. Pure (no I/O).
 */
export function screenReport(
  report: MetricsReport,
  catalog: EnvironmentCatalog,
  now: number,
  limits: ReportLimits,
  clientSide: boolean,
): ScreenedReport {
  const kept: VariantStats[] = [];
  const out: ScreenedReport = { kept, dropped: 0, byReason: {}, issues: [] };
  const latest = now + limits.maxFutureMs;
  const earliest = now - limits.maxPastMs - 60_000;
  const maxCount = clientSide ? limits.maxCountClientSide : limits.maxCountServerSide;
  const drop = (i: number, field: string, limit: DropReason, message: string) => {
    out.dropped++;
    out.byReason[limit] = (out.byReason[limit] ?? 0) + 1;
    if (out.issues.length < MAX_ISSUES) out.issues.push({ path: `/stats/${i}/${field}`, message, limit });
  };
  // biome-ignore lint/suspicious/useIterableCallbackReturn: `return drop(...)` ends one row's checks (drop returns nothing)
  report.stats.forEach((s, i) => {
    const variants = catalog.get(s.flag);
    if (variants === undefined) return drop(i, 'flag', 'unknown-flag', `no flag "${s.flag}" in this SDK key's environment`);
    if (s.variant !== null && !variants.has(s.variant))
      return drop(i, 'variant', 'unknown-variant', `flag "${s.flag}" has no variant "${s.variant}"`);
    if (s.minute > latest) {
      return drop(
        i,
        'minute',
        'clock-skew',
        `${iso(s.minute)} is more than ${limits.maxFutureMs / 1000} s ahead of the server's clock (${iso(now)}); limit: clock skew`,
      );
    }
    if (s.minute < earliest)
      return drop(i, 'minute', 'too-old', `${iso(s.minute)} is more than ${limits.maxPastMs / 1000} s in the past; limit: report age`);
    const above = countAbove(s, maxCount);
    if (above) {
      return drop(
        i,
        above[0],
        'count-limit',
        `${above[1]} is more than ${maxCount}, the most one row may count for a ${clientSide ? 'client' : 'server'}-side SDK key; limit: count per row`,
      );
    }
    kept.push(s);
  });
  return out;
}
