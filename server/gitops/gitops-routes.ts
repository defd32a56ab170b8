/**
 * Flags as code (CONTRACT §15; docs/flags-as-code.md):
 *   GET  /api/v1/export?environment=...   every segment, flag and state as one document (JSON; the CLI prints YAML)
 *   POST /api/v1/apply                    { document, dryRun?, reason? }: the plan, and unless dryRun the apply, in one
 *                                         transaction; If-Match: the plan's fingerprint (412 when it no longer matches)
 *   POST /api/v1/flags/{key}/promote      { from, to, dryRun?, reason? }: copy a state; If-Match: the target's ETag
 */
import type { FastifyPluginAsync } from 'fastify';
import { problem } from '../errors.js';
import { ifMatch, parseIfMatch, stateETag } from '../admin/preconditions.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';
import type { AviaryDocument } from './document.js';
import { GitopsService } from './apply-service.js';
import { StoreError } from '../storage/store-errors.js';

/** A store error about an entry of the document, its paths made pointers into the request body (`/document/...`). */
async function inDocument<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof StoreError)) throw e;
    const entry = typeof e.details.entry === 'string' ? { entry: `/document${e.details.entry}` } : {};
    throw new StoreError(
      e.kind,
      e.message,
      e.issues.map((i) => ({ path: `/document${i.path}`, message: i.message })),
      { ...e.details, ...entry },
    );
  }
}

/** A whole configuration is bigger than one resource (the admin API's default body limit is fastify's 1 MiB). */
export const APPLY_BODY_LIMIT = 32 * 1024 * 1024;

export const gitopsRoutes: FastifyPluginAsync = async (app) => {
  const service = new GitopsService(app.store, app.writer, app.stores.flags, app.stores.states, app.stores.segments);

  app.get<RouteOf<'exportDocument'>>('/export', { schema: routeSchema('exportDocument') }, async (request, reply) => {
    const env = request.query.environment;
    const doc = await service.export(env === undefined ? undefined : Array.isArray(env) ? env : [env]);
    return reply.code(200).send(doc as never);
  });

  app.post<RouteOf<'applyDocument'>>('/apply', { schema: routeSchema('applyDocument'), bodyLimit: APPLY_BODY_LIMIT }, async (request, reply) => {
    const { document, dryRun = false, reason = null, prune = true } = request.body;
    const tags = parseIfMatch(request.headers['if-match']);
    const result = await inDocument(() =>
      service.apply(request.actor!, document as unknown as AviaryDocument, {
        dryRun,
        reason,
        prune,
        ...(tags ? { ifMatch: tags } : {}),
        onMismatch: (current) =>
          problem(
            'precondition-failed',
            `The server changed since the plan (${current.changes.length} change(s) now, fingerprint "${current.fingerprint}"); nothing was applied: plan again.`,
            { extensions: { fingerprint: current.fingerprint, changes: current.changes } },
          ),
      }),
    );
    return reply
      .header('etag', `"${result.fingerprint}"`)
      .code(200)
      .send({
        dryRun,
        applied: !dryRun && result.changes.length > 0,
        fingerprint: result.fingerprint,
        changes: result.changes,
        versions: result.versions,
      });
  });

  app.post<RouteOf<'promoteFlag'>>('/flags/:key/promote', { schema: routeSchema('promoteFlag') }, async (request, reply) => {
    const { key } = request.params;
    const { from, to, dryRun = false, reason = null } = request.body;
    const precondition = ifMatch(request.headers['if-match'], stateETag, `The state of "${key}" in "${to}"`);
    const result = await service.promote(request.actor!, key, from, to, { dryRun, reason, precondition });
    return reply.header('etag', `"${result.etag}"`).code(200).send({
      flag: key,
      source: from,
      target: to,
      dryRun,
      changed: result.changed,
      changes: result.fields,
      etag: result.etag,
      environmentVersion: result.environmentVersion,
    });
  });
};
