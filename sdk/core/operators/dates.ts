/**
 * Dates for `before` / `after`: epoch milliseconds (finite numbers) or ISO-8601 strings with an explicit zone.
 *
 * Only the forms below are dates; anything else (including `Date.parse`'s implementation-defined formats and
 * zone-less date-times, which would depend on the evaluating machine's time zone) is not:
 * `YYYY-MM-DD` (midnight UTC), `YYYY-MM-DDTHH:MM[:SS[.fraction]](Z|±HH:MM|±HHMM)`; `t`/`z` and a space instead of
 * `T` are accepted; fractions beyond milliseconds are truncated.
 */

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?([Zz]|([+-])(\d{2}):?(\d{2})))?$/;

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Epoch milliseconds of a strict ISO-8601 string (see module doc), or undefined if it is not one. */
export function parseIsoDate(s: string): number | undefined {
  if (s.length > 40) return undefined;
  const m = ISO.exec(s);
  if (m === null) return undefined;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1) return undefined;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  if (day > (month === 2 ? (leap ? 29 : 28) : DAYS_IN_MONTH[month - 1]!)) return undefined;
  const days = daysFromCivil(year, month, day);
  if (m[4] === undefined) return days * 86_400_000;
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  let offsetMinutes = 0;
  if (m[9] !== undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const utc = days * 86_400_000 + ((hour * 60 + minute) * 60 + second) * 1000 + ms;
  return utc - offsetMinutes * 60_000;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's days_from_civil; no `Date.UTC` year quirks). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** A date operand: a finite number is epoch milliseconds; a string must be strict ISO-8601. */
export function toEpochMillis(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string') return parseIsoDate(v);
  return undefined;
}

const cache = new Map<string, number>();
const CACHE_SIZE = 1024;

/** `toEpochMillis` for the evaluation path: parsed strings are kept in a bounded map (cleared when full). */
export function toEpochMillisCached(v: unknown): number | undefined {
  if (typeof v !== 'string') return toEpochMillis(v);
  let t = cache.get(v);
  if (t === undefined) {
    t = parseIsoDate(v) ?? NaN;
    if (cache.size >= CACHE_SIZE) cache.clear();
    cache.set(v, t);
  }
  return Number.isNaN(t) ? undefined : t;
}
