/** Small request-body helpers shared by the admin routes (structural checks before the core's validators). */
import { validationError, type ProblemIssue } from '../errors.js';

/** The fixed key pattern of flags (CONTRACT §1); also used for environments and segments. */
export const KEY_PATTERN = /^[a-z0-9][a-z0-9._-]{0,127}$/;

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The body as an object, or a 400 naming the root. */
export function requireBodyObject(body: unknown): Record<string, unknown> {
  if (!isObject(body)) throw validationError([{ path: '', message: 'the body must be a JSON object' }]);
  return body;
}

/** An optional body that, when present, must be an object (kill/revive take `{ reason }` or nothing). */
export function optionalBodyObject(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null || body === '') return {};
  return requireBodyObject(body);
}

/** An optional `reason` string (at most 1000 characters). */
export function readReason(body: Record<string, unknown>, issues: ProblemIssue[]): string | null {
  const r = body.reason;
  if (r === undefined || r === null) return null;
  if (typeof r !== 'string' || r.length > 1000) {
    issues.push({ path: '/reason', message: 'must be a string of at most 1000 characters' });
    return null;
  }
  return r;
}

/** Rejects properties outside `allowed`. */
export function checkKnown(body: Record<string, unknown>, allowed: readonly string[], issues: ProblemIssue[], base = ''): void {
  for (const k of Object.keys(body)) if (!allowed.includes(k)) issues.push({ path: `${base}/${k}`, message: 'is not a known property' });
}
