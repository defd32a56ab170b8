/**
 * Validation of `MetricsReport`s (sdk/protocol.ts). Hand-written rather than schema-compiled because it runs on
 * every SDK flush (tens of thousands a minute) and must name the exact field of the first problems it finds.
 * A rejected report is dropped by the SDK (a 4xx is final), so only reports that can never be counted are rejected.
 *
 * Two steps: `validateMetricsReport` checks the shape (a malformed report is refused whole), then `screenReport`
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

const FLAG_KEY = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const REASONS = new Set(['OFF', 'TARGET_MATCH', 'RULE_MATCH', 'FALLTHROUGH', 'ERROR']);
const MAX_STATS = 10_000;
const MAX_ISSUES = 20;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function checkStats(s: unknown, path: string, add: (p: string, m: string) => void): void {
  if (!isRecord(s)) return add(path, 'must be an object');
  for (const k of Object.keys(s)) {
    if (!['flag', 'variant', 'minute', 'evaluations', 'reasons', 'outcomes', 'errors', 'latency', 'valueSum', 'valueCount'].includes(k))
      add(`${path}/${k}`, 'unknown field');
  }
  if (typeof s.flag !== 'string' || !FLAG_KEY.test(s.flag)) add(`${path}/flag`, 'must be a flag key');
  if (s.variant !== null && (typeof s.variant !== 'string' || s.variant.length > 128)) add(`${path}/variant`, 'must be a variant key or null');
  if (!isCount(s.minute) || s.minute % 60_000 !== 0) add(`${path}/minute`, 'must be epoch milliseconds at the start of a minute');
  for (const k of ['evaluations', 'outcomes', 'errors'] as const) if (!isCount(s[k])) add(`${path}/${k}`, 'must be a non-negative integer');
  if (isCount(s.errors) && isCount(s.outcomes) && s.errors > s.outcomes) add(`${path}/errors`, 'cannot exceed outcomes');
  if (s.reasons !== undefined) {
    if (!isRecord(s.reasons)) add(`${path}/reasons`, 'must be an object');
    else
      for (const [k, v] of Object.entries(s.reasons)) {
        if (!REASONS.has(k)) add(`${path}/reasons/${k}`, 'unknown reason kind');
        else if (!isCount(v)) add(`${path}/reasons/${k}`, 'must be a non-negative integer');
      }
  }
  if (s.latency !== undefined) {
    if (!isRecord(s.latency)) add(`${path}/latency`, 'must be an object of bucket index → count');
    else {
      let n = 0;
      for (const [k, v] of Object.entries(s.latency)) {
        const i = Number(k);
        if (!/^[0-9]{1,3}$/.test(k) || i >= LATENCY_BUCKETS) add(`${path}/latency/${k}`, `bucket index must be 0–${LATENCY_BUCKETS - 1}`);
        else if (!isCount(v)) add(`${path}/latency/${k}`, 'must be a non-negative integer');
        else n += v;
      }
      if (isCount(s.outcomes) && n > s.outcomes) add(`${path}/latency`, 'holds more samples than outcomes');
    }
  }
  if (s.valueSum !== undefined && (typeof s.valueSum !== 'number' || !Number.isFinite(s.valueSum)))
    add(`${path}/valueSum`, 'must be a finite number');
  if (s.valueCount !== undefined && !isCount(s.valueCount)) add(`${path}/valueCount`, 'must be a non-negative integer');
}

/** Checks a request body against `MetricsReport`; answers the report or the first (up to 20) problems. */
export function validateMetricsReport(body: unknown): { value: MetricsReport; issues: [] } | { value: null; issues: ValidationIssue[] } {
  const issues: ValidationIssue[] = [];
  const add = (path: string, message: string) => {
    if (issues.length < MAX_ISSUES) issues.push({ path, message });
  };
  if (!isRecord(body)) return { value: null, issues: [{ path: '', message: 'must be a MetricsReport object' }] };
  for (const k of Object.keys(body)) if (!['sdkId', 'seq', 'app', 'sdk', 'stats'].includes(k)) add(`/${k}`, 'unknown field');
  if (typeof body.sdkId !== 'string' || body.sdkId.length < 1 || body.sdkId.length > 128) add('/sdkId', 'must be a string of 1–128 characters');
  if (!isCount(body.seq)) add('/seq', 'must be a non-negative integer');
  for (const k of ['app', 'sdk'] as const) {
    const v = body[k];
    if (v === undefined) continue;
    if (!isRecord(v)) add(`/${k}`, 'must be an object');
    else
      for (const [f, x] of Object.entries(v)) {
        if (f !== 'name' && f !== 'version') add(`/${k}/${f}`, 'unknown field');
        else if (typeof x !== 'string' || x.length > 200) add(`/${k}/${f}`, 'must be a string of at most 200 characters');
      }
  }
  if (!Array.isArray(body.stats)) add('/stats', 'must be an array');
  else if (body.stats.length > MAX_STATS) add('/stats', `at most ${MAX_STATS} rows per report`);
  else for (let i = 0; i < body.stats.length && issues.length < MAX_ISSUES; i++) checkStats(body.stats[i], `/stats/${i}`, add);
  if (issues.length > 0) return { value: null, issues };
  return { value: body as unknown as MetricsReport, issues: [] };
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
