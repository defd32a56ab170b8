/**
 * Times at the API edge. Storage keeps epoch milliseconds (integers compare and index well, in SQLite and
 * PostgreSQL alike); every time the API answers is an RFC 3339 string in UTC with milliseconds
 * (`2026-12-06T09:00:00.000Z`, the spec's `DateTime`), and time query parameters take an RFC 3339 date-time or
 * epoch milliseconds (the spec's `TimeParameter`). The stores' mappers to API shapes call `apiTime`; routes that read
 * a time parameter call `parseTimeParameter` on the value the schema already accepted.
 */

/** Epoch milliseconds → the API's RFC 3339 form. */
export function apiTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** `apiTime`, passing null through (a kill that never happened, a token never used). */
export function apiTimeOrNull(ms: number | null): string | null {
  return ms === null ? null : apiTime(ms);
}

// RFC 3339 §5.6 date-time, as ajv-formats' `date-time` accepts it (`t`/space separator, offsets `Z`, `+01`, `+0100`,
// `+01:00`, leap second 60). `Date.parse` refuses some of these (`+01`, `:60`), so the fields are read here.
const FOUR_CENTURIES_MS = 146_097 * 86_400_000;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)$/;

/**
 * A time query parameter (RFC 3339 date-time or epoch milliseconds) → epoch milliseconds. Fractions of a millisecond
 * are dropped. NaN when the value is neither, which the route's schema has already refused.
 */
export function parseTimeParameter(value: string): number {
  if (/^[0-9]{1,15}$/.test(value)) return Number(value);
  const m = DATE_TIME.exec(value);
  if (!m) return NaN;
  const [, y, mo, d, h, mi, s, frac, z, sign, oh, om] = m;
  // Date.UTC reads years 0–99 as 1900–1999; the Gregorian calendar repeats every 400 years, so shift by one cycle.
  const year = Number(y);
  const shift = year < 100 ? 400 : 0;
  const utc =
    Date.UTC(year + shift, Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0) -
    (shift ? FOUR_CENTURIES_MS : 0);
  if (z || !sign) return utc;
  const offset = (Number(oh) * 60 + Number(om ?? 0)) * 60_000;
  return sign === '+' ? utc - offset : utc + offset;
}
