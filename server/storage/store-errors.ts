/**
 * What a store refuses, in its own terms: no HTTP here. The admin API maps each kind to its problem document
 * (server/errors.ts: not-found → 404, conflict and in-use → 409, invalid → 400 with the issues, forbidden → 403).
 */

/** One reason an input is invalid: where (a JSON pointer into it) and why. */
export interface StoreIssue {
  path: string;
  message: string;
}

export type StoreErrorKind = 'not-found' | 'conflict' | 'in-use' | 'invalid' | 'forbidden';

export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly kind: StoreErrorKind,
    message: string,
    /** For `invalid` (and conflicts caused by invalid data): each issue. */
    readonly issues: StoreIssue[] = [],
    /** Facts a client can act on (the flags that use a segment, say). */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export const notFound = (message: string) => new StoreError('not-found', message);
export const conflict = (message: string, issues: StoreIssue[] = []) => new StoreError('conflict', message, issues);
/** The actor may not do this (an approval of one's own change request, say). */
export const forbidden = (message: string) => new StoreError('forbidden', message);

/** An invalid input: the message names the first issue. */
export function invalid(issues: StoreIssue[]): StoreError {
  const first = issues[0];
  return new StoreError('invalid', first ? `${first.path || '/'}: ${first.message}` : 'invalid', issues);
}
