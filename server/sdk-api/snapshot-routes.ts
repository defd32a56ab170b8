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
  // Every SDK-visible change bumps the version, so the serialized snapshot of a version can be reused by every poller.
  const serialized = new Map<string, { version: number; json: string }>();

  app.get('/flags', async (request, reply) => {
    const { environment } = request.sdk!;
    const current = app.snapshots.version(environment);
    if (current === null) throw problem('not-found', `Environment "${environment}" no longer exists.`);
    const etag = versionETag(environment, current);
    if (noneMatch(request.headers['if-none-match'], etag)) return reply.code(304).header('etag', etag).send();
    let cached = serialized.get(environment);
    if (cached?.version !== current) {
      const snapshot = app.snapshots.get(environment);
      if (!snapshot) throw problem('not-found', `Environment "${environment}" no longer exists.`);
      cached = { version: snapshot.version, json: JSON.stringify(snapshot) };
      serialized.set(environment, cached);
    }
    return reply
      .header('etag', versionETag(environment, cached.version))
      .header('cache-control', 'no-cache')
      .type('application/json; charset=utf-8')
      .send(cached.json);
  });
};
