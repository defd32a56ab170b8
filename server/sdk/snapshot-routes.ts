/** `GET /sdk/v1/flags`: the environment's snapshot, with `ETag` = its version, and 304 when unchanged. */
import type { FastifyPluginAsync } from 'fastify';
import { problem } from '../errors.js';

/** The ETag of an environment version (strong: the snapshot of a version never changes). */
export const versionETag = (environment: string, version: number) => `"${environment}-${version}"`;

/** True when an `If-None-Match` header lists `etag` (or `*`). */
export function noneMatch(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const values = (Array.isArray(header) ? header.join(',') : header).split(',').map((s) => s.trim().replace(/^W\//, ''));
  return values.includes('*') || values.includes(etag);
}

export const snapshotRoutes: FastifyPluginAsync = async (app) => {
  app.get('/flags', async (request, reply) => {
    const { environment } = request.sdk!;
    const current = app.snapshots.version(environment);
    if (current === null) throw problem('not-found', `Environment "${environment}" no longer exists.`);
    const etag = versionETag(environment, current);
    if (noneMatch(request.headers['if-none-match'], etag)) return reply.code(304).header('etag', etag).send();
    const snapshot = app.snapshots.get(environment);
    if (!snapshot) throw problem('not-found', `Environment "${environment}" no longer exists.`);
    return reply.header('etag', versionETag(environment, snapshot.version)).header('cache-control', 'no-cache').send(snapshot);
  });
};
