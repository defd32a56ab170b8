/**
 * Flag definitions: `GET|POST /api/v1/flags`, `GET|PATCH|DELETE /api/v1/flags/{key}`.
 * Reads carry `ETag: "r<revision>"`; PATCH and DELETE honour `If-Match` (412 when stale). A missing `If-Match` is
 * allowed (last writer wins), so scripts and the CLI stay simple; send it whenever you edit what you read.
 */
import type { FastifyPluginAsync } from 'fastify';
import { problem, validationError, type ProblemIssue } from '../errors.js';
import { flagETag, ifMatch } from './preconditions.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';
import { withLifecycle } from '../lifecycle/lifecycle-routes.js';

export const flagRoutes: FastifyPluginAsync = async (app) => {
  app.get<RouteOf<'listFlags'>>('/flags', { schema: routeSchema('listFlags') }, async (request) => {
    // The schema has checked each parameter's type and values; what is left is how they combine.
    const { tag, q, environment, enabled, killed, status } = request.query;
    const archived = request.query.archived === undefined ? undefined : request.query.archived === 'all' ? 'all' : request.query.archived === 'true';
    const issues: ProblemIssue[] = [];
    if ((enabled !== undefined || killed !== undefined) && environment === undefined) {
      issues.push({ path: '/query/environment', message: 'is required with "enabled" or "killed"' });
    }
    if (status !== undefined && environment === undefined) issues.push({ path: '/query/environment', message: 'is required with "status"' });
    if (environment !== undefined && !(await app.stores.environments.get(environment)))
      issues.push({ path: '/query/environment', message: `no environment "${environment}"` });
    if (issues.length) throw validationError(issues);
    const flags = await withLifecycle(
      app,
      await app.stores.flags.list({
        ...(tag !== undefined ? { tag } : {}),
        ...(archived !== undefined ? { archived } : {}),
        ...(q !== undefined ? { q } : {}),
        ...(environment !== undefined ? { environment } : {}),
        ...(enabled !== undefined ? { enabled } : {}),
        ...(killed !== undefined ? { killed } : {}),
      }),
    );
    return { flags: status === undefined ? flags : flags.filter((f) => f.environments[environment!]?.lifecycle?.status === status) };
  });

  app.post<RouteOf<'createFlag'>>('/flags', { schema: routeSchema('createFlag') }, async (request, reply) => {
    const flag = await app.stores.flags.create(request.actor!, request.body);
    return reply
      .header('etag', `"${flagETag(flag.revision)}"`)
      .header('location', `/api/v1/flags/${flag.key}`)
      .code(201)
      .send(flag);
  });

  app.get<RouteOf<'getFlag'>>('/flags/:key', { schema: routeSchema('getFlag') }, async (request, reply) => {
    const found = await app.stores.flags.get(request.params.key);
    if (!found) throw problem('not-found', `No flag "${request.params.key}".`);
    const flag = (await withLifecycle(app, [found]))[0]!;
    return reply
      .header('etag', `"${flagETag(flag.revision)}"`)
      .code(200)
      .send(flag);
  });

  app.patch<RouteOf<'updateFlag'>>('/flags/:key', { schema: routeSchema('updateFlag') }, async (request, reply) => {
    const flag = await app.stores.flags.patch(
      request.actor!,
      request.params.key,
      request.body,
      ifMatch(request.headers['if-match'], flagETag, `Flag "${request.params.key}"`),
    );
    return reply
      .header('etag', `"${flagETag(flag.revision)}"`)
      .code(200)
      .send(flag);
  });

  app.delete<RouteOf<'deleteFlag'>>('/flags/:key', { schema: routeSchema('deleteFlag') }, async (request, reply) => {
    if (!(await app.stores.flags.get(request.params.key))) throw problem('not-found', `No flag "${request.params.key}".`);
    const flag = await app.stores.flags.archive(
      request.actor!,
      request.params.key,
      ifMatch(request.headers['if-match'], flagETag, `Flag "${request.params.key}"`),
    );
    return reply
      .header('etag', `"${flagETag(flag.revision)}"`)
      .code(200)
      .send(flag);
  });
};
