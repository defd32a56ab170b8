/**
 * HTTP preconditions of the admin API: entity tags and `If-Match`. The stores know nothing of HTTP: they take a
 * `Precondition` and call it, inside the writing transaction, with the resource's current revision (or version), so
 * the compare and the write are atomic; what an ETag looks like and the 412 answer live here.
 */
import { problem } from '../errors.js';
import type { Precondition } from '../storage/preconditions.js';

export const flagETag = (revision: number) => `r${revision}`;
export const stateETag = (version: number) => `v${version}`;
export const segmentETag = (revision: number) => `r${revision}`;

/** Parses an `If-Match` header into the list of entity tags (without W/ and quotes); undefined when absent. */
export function parseIfMatch(header: string | string[] | undefined): string[] | undefined {
  if (header === undefined) return undefined;
  return (Array.isArray(header) ? header.join(',') : header)
    .split(',')
    .map((s) =>
      s
        .trim()
        .replace(/^W\//, '')
        .replace(/^"(.*)"$/, '$1'),
    )
    .filter((s) => s.length > 0);
}

/**
 * The precondition of a request's `If-Match` (undefined when it has none): 412 unless it lists the current entity tag
 * or `*`. A resource that does not exist yet (current null) passes only `*`-free... see `onMissing`.
 */
export function ifMatch(
  header: string | string[] | undefined,
  etagOf: (n: number) => string,
  what: string,
  onMissing: 'fail' | 'pass-with-star' = 'pass-with-star',
): Precondition | undefined {
  const tags = parseIfMatch(header);
  if (tags === undefined) return undefined;
  return (current) => {
    if (current === null) {
      if (onMissing === 'pass-with-star' && tags.includes('*')) return;
      throw problem('precondition-failed', `${what} does not exist; If-Match cannot match it.`, {});
    }
    const etag = etagOf(current);
    if (tags.includes('*') || tags.includes(etag)) return;
    throw problem('precondition-failed', `${what} has changed (its ETag is now "${etag}"); re-read it and retry.`, {
      extensions: { currentETag: `"${etag}"` },
    });
  };
}
