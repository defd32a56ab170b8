/** Times as the API answers them: RFC 3339 in UTC with milliseconds (`2026-12-06T09:00:00.000Z`). */
export const API_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The epoch milliseconds of an API time, after checking its form (throws on anything else, numbers included). */
export function apiTimeMs(value: unknown): number {
  if (typeof value !== 'string' || !API_TIME.test(value))
    throw new Error(`not an API time (RFC 3339 UTC with milliseconds): ${JSON.stringify(value)}`);
  return Date.parse(value);
}
