/**
 * Flag definitions: `GET|POST /api/v1/flags`, `GET|PATCH|DELETE /api/v1/flags/{key}`.
 * Reads carry `ETag: "r<revision>"`; PATCH and DELETE honour `If-Match` (412 when stale). A missing `If-Match` is
 * allowed (last writer wins), so scripts and the CLI stay simple; send it whenever you edit what you read.
 */
import type { FastifyPluginAsync } from 'fastify';
import { problem, validationError, type ProblemIssue } from '../errors.js';
import { flagETag, parseIfMatch } from '../storage/flag-store.js';
import { requireBodyObject } from './body.js';
import { queryBoolean, queryString, type Query } from './query.js';
import { requestBody } from '../openapi/validation.js';

export const flagRoutes: FastifyPluginAsync = async (app) => {
  app.get('/flags', async (request) => {
    const q = request.query as Query;
    const issues: ProblemIssue[] = [];
    const archivedRaw = queryString(q, 'archived', issues);
    let archived: boolean | 'all' | undefined;
    if (archivedRaw !== undefined) {
      if (archivedRaw === 'all') archived = 'all';
      else archived = queryBoolean(q, 'archived', issues);
    }
    const environment = queryString(q, 'environment', issues);
    const enabled = queryBoolean(q, 'enabled', issues);
    const killed = queryBoolean(q, 'killed', issues);
    if ((enabled !== undefined || killed !== undefined) && environment === undefined) {
      issues.push({ path: '/query/environment', message: 'is required with "enabled" or "killed"' });
    }
    if (environment !== undefined && !app.stores.environments.get(environment)) issues.push({ path: '/query/environment', message: `no environment "${environment}"` });
    const tag = queryString(q, 'tag', issues);
    const search = queryString(q, 'q', issues);
    if (issues.length) throw validationError(issues);
    return {
      flags: app.stores.flags.list({
        ...(tag !== undefined ? { tag } : {}),
        ...(archived !== undefined ? { archived } : {}),
        ...(search !== undefined ? { q: search } : {}),
        ...(environment !== undefined ? { environment } : {}),
        ...(enabled !== undefined ? { enabled } : {}),
        ...(killed !== undefined ? { killed } : {}),
      }),
    };
  });

  app.post('/flags', { schema: { body: requestBody('createFlag') } }, async (request, reply) => {
    const flag = app.stores.flags.create(request.actor!, requireBodyObject(request.body));
    return reply.code(201).header('etag', `"${flagETag(flag.revision)}"`).header('location', `/api/v1/flags/${flag.key}`).send(flag);
  });

  app.get<{ Params: { key: string } }>('/flags/:key', async (request, reply) => {
    const flag = app.stores.flags.get(request.params.key);
    if (!flag) throw problem('not-found', `No flag "${request.params.key}".`);
    return reply.header('etag', `"${flagETag(flag.revision)}"`).send(flag);
  });

  app.patch<{ Params: { key: string } }>('/flags/:key', { schema: { body: requestBody('updateFlag') } }, async (request, reply) => {
    const body = requireBodyObject(request.body);
    const flag = app.stores.flags.patch(request.actor!, request.params.key, body, parseIfMatch(request.headers['if-match']));
    return reply.header('etag', `"${flagETag(flag.revision)}"`).send(flag);
  });

  app.delete<{ Params: { key: string } }>('/flags/:key', async (request, reply) => {
    if (!app.stores.flags.get(request.params.key)) throw problem('not-found', `No flag "${request.params.key}".`);
    const flag = app.stores.flags.archive(request.actor!, request.params.key, parseIfMatch(request.headers['if-match']));
    return reply.header('etag', `"${flagETag(flag.revision)}"`).send(flag);
  });
};
