/**
 * Dates for `before` / `after`: epoch milliseconds (finite numbers) or ISO-8601 strings with an explicit zone.
 *
 * Only the forms below are dates; anything else (including `Date.parse`'s implementation-defined formats and
 * zone-less date-times, which would depend on the evaluating machine's time zone) is not:
 * `YYYY-MM-DD` (midnight UTC), `YYYY-MM-DDTHH:MM[:SS[.fraction]](Z|±HH:MM|±HHMM)`; `t`/`z` and a space instead of
 * `T` are accepted; fractions beyond milliseconds are truncated.
 */

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?([Zz]|([+-])(\d{2}):?(\d{2})))?$/;

/** Epoch milliseconds of a strict ISO-8601 string (see module doc), or undefined if it is not one. */
export function parseIsoDate(s: string): number | undefined {
  const m = s.length > 40 ? null : ISO.exec(s);
  if (m === null) return undefined;
  // Groups: 1 year, 2 month, 3 day, 4 hour, 5 minute, 6 second, 7 fraction, 9 offset sign, 10 its hours, 11 minutes.
  const n = (group: number) => Number(m[group] ?? 0);
  // setUTCFullYear, unlike Date.UTC, keeps years 0–99 as written; the calendar is proleptic Gregorian, as ISO-8601's.
  const d = new Date(0);
  d.setUTCFullYear(n(1), n(2) - 1, n(3));
  // A month or day out of range rolls over into another date: then it is not a date.
  if (d.getUTCMonth() !== n(2) - 1 || d.getUTCDate() !== n(3) || n(4) > 23 || n(5) > 59 || n(6) > 59 || n(10) > 23 || n(11) > 59) return undefined;
  const offsetMinutes = (m[9] === '-' ? -1 : 1) * (n(10) * 60 + n(11));
  return d.setUTCHours(n(4), n(5) - offsetMinutes, n(6), Number(m[7]?.slice(0, 3).padEnd(3, '0') ?? 0));
}

/** A date operand: a finite number is epoch milliseconds; a string must be strict ISO-8601. */
export function toEpochMillis(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string') return parseIsoDate(v);
  return undefined;
}
