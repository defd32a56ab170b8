/**
 * Times as the API answers them: RFC 3339 strings (the spec's `DateTime`). The CLI and the console read times only
 * through these helpers, which take exactly the spec's time type: code never does arithmetic on a time field itself,
 * so if a field changes type in the spec the helpers follow it, and a use that assumed the old type stops compiling.
 */
import type { Schemas } from './types.js';

/** Any time member of an API answer, as the spec types it. */
export type ApiTime = Schemas['DateTime'];

/** Epoch milliseconds of an API time (NaN if a string does not parse, which the spec rules out). */
export function timeMs(t: ApiTime): number {
  return Date.parse(t);
}

/** An API time as `2026-12-06T09:00:00.000Z`, or `-` when absent (a `null` in the spec: never used, not revoked, ...). */
export function formatTime(t: ApiTime | null | undefined): string {
  if (t === null || t === undefined) return '-';
  const ms = timeMs(t);
  return Number.isNaN(ms) ? String(t) : new Date(ms).toISOString();
}

/** An API time in the reader's locale (the console), or `fallback` when absent. */
export function formatLocalTime(t: ApiTime | null | undefined, fallback = '–'): string {
  if (t === null || t === undefined) return fallback;
  const ms = timeMs(t);
  return Number.isNaN(ms) ? String(t) : new Date(ms).toLocaleString();
}
