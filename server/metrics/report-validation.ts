/**
 * Validation of `MetricsReport`s (sdk/protocol.ts). Hand-written rather than schema-compiled because it runs on
 * every SDK flush (tens of thousands a minute) and must name the exact field of the first problems it finds.
 * A rejected report is dropped by the SDK (a 4xx is final), so only reports that can never be counted are rejected.
 */
import { LATENCY_BUCKETS, type ValidationIssue } from '@aviary/sdk/core';
import type { MetricsReport, VariantStats } from '@aviary/sdk/protocol';

const FLAG_KEY = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const REASONS = new Set(['OFF', 'TARGET_MATCH', 'RULE_MATCH', 'FALLTHROUGH', 'ERROR']);
const MAX_STATS = 10_000;
const MAX_ISSUES = 20;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function checkStats(s: unknown, path: string, add: (p: string, m: string) => void): void {
  if (!isRecord(s)) return add(path, 'must be an object');
  for (const k of Object.keys(s)) {
    if (!['flag', 'variant', 'minute', 'evaluations', 'reasons', 'outcomes', 'errors', 'latency', 'valueSum', 'valueCount'].includes(k)) add(`${path}/${k}`, 'unknown field');
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
  if (s.valueSum !== undefined && (typeof s.valueSum !== 'number' || !Number.isFinite(s.valueSum))) add(`${path}/valueSum`, 'must be a finite number');
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
