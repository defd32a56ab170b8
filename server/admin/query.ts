/** Query-string parsing for admin listings: typed values or a 400 naming `/query/<name>`. */
import type { ProblemIssue } from '../errors.js';

export type Query = Record<string, unknown>;

export function queryString(q: Query, name: string, issues: ProblemIssue[], max = 200): string | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length > max) {
    issues.push({ path: `/query/${name}`, message: `must be a single string of at most ${max} characters` });
    return undefined;
  }
  return v;
}

export function queryBoolean(q: Query, name: string, issues: ProblemIssue[]): boolean | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  issues.push({ path: `/query/${name}`, message: 'must be "true" or "false"' });
  return undefined;
}

/** A time as epoch milliseconds or an ISO-8601 date-time. */
export function queryTime(q: Query, name: string, issues: ProblemIssue[]): number | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v === 'string') {
    if (/^\d{1,15}$/.test(v)) return Number(v);
    if (/^\d{4}-\d{2}-\d{2}/.test(v)) {
      const t = Date.parse(v);
      if (Number.isFinite(t)) return t;
    }
  }
  issues.push({ path: `/query/${name}`, message: 'must be epoch milliseconds or an ISO-8601 date-time' });
  return undefined;
}

export function queryInt(q: Query, name: string, issues: ProblemIssue[], min: number, max: number): number | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v === 'string' && /^\d{1,9}$/.test(v)) {
    const n = Number(v);
    if (n >= min && n <= max) return n;
  }
  issues.push({ path: `/query/${name}`, message: `must be an integer from ${min} to ${max}` });
  return undefined;
}
