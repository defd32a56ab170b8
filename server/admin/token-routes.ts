/** `GET|POST /api/v1/tokens`, `GET|DELETE /api/v1/tokens/{id}`. */
import type { FastifyPluginAsync } from 'fastify';
import { problem, validationError, type ProblemIssue } from '../errors.js';
import { checkKnown, optionalBodyObject, readReason, requireBodyObject } from './body.js';
import { requestBody } from '../openapi/validation.js';

export const tokenRoutes: FastifyPluginAsync = async (app) => {
  app.get('/tokens', async () => ({ tokens: app.stores.tokens.list() }));

  app.post('/tokens', { schema: { body: requestBody('createToken') } }, async (request, reply) => {
    const body = requireBodyObject(request.body);
    const issues: ProblemIssue[] = [];
    checkKnown(body, ['kind', 'environment', 'name', 'clientSide'], issues);
    if (body.kind !== 'admin' && body.kind !== 'sdk') issues.push({ path: '/kind', message: 'must be "admin" or "sdk"' });
    if (typeof body.name !== 'string' || body.name.trim().length === 0 || body.name.length > 200) issues.push({ path: '/name', message: 'must be a non-empty string of at most 200 characters' });
    if (body.kind === 'sdk') {
      if (typeof body.environment !== 'string') issues.push({ path: '/environment', message: 'is required for SDK tokens' });
      else if (!app.stores.environments.get(body.environment)) issues.push({ path: '/environment', message: `no environment "${body.environment}"` });
    } else if (body.kind === 'admin' && body.environment !== undefined && body.environment !== null) {
      issues.push({ path: '/environment', message: 'admin tokens are not scoped to an environment' });
    }
    // CONTRACT §16: an SDK key is server-side (secret) unless created with clientSide: true (public, for browsers).
    if (body.clientSide !== undefined && typeof body.clientSide !== 'boolean') issues.push({ path: '/clientSide', message: 'must be a boolean' });
    else if (body.clientSide === true && body.kind !== 'sdk') issues.push({ path: '/clientSide', message: 'only SDK keys are client-side or server-side' });
    if (issues.length) throw validationError(issues);
    const created = app.stores.tokens.create(request.actor!, {
      kind: body.kind as 'admin' | 'sdk',
      environment: body.kind === 'sdk' ? (body.environment as string) : null,
      name: body.name as string,
      clientSide: body.clientSide === true,
    });
    // The secret is in this response and nowhere else: never cache it.
    return reply.code(201).header('cache-control', 'no-store').header('location', `/api/v1/tokens/${created.id}`).send(created);
  });

  app.get<{ Params: { id: string } }>('/tokens/:id', async (request) => {
    const token = app.stores.tokens.get(request.params.id);
    if (!token) throw problem('not-found', `No token "${request.params.id}".`);
    return token;
  });

  app.delete<{ Params: { id: string } }>('/tokens/:id', { schema: { body: requestBody('deleteToken') } }, async (request) => {
    const { id } = request.params;
    const issues: ProblemIssue[] = [];
    const reason = readReason(optionalBodyObject(request.body), issues);
    if (issues.length) throw validationError(issues);
    const token = app.stores.tokens.get(id);
    if (!token) throw problem('not-found', `No token "${id}".`);
    if (token.configured && token.revokedAt === null) {
      throw problem('conflict', `Token "${token.name}" comes from the server's environment variables; unset the variable and restart to revoke it.`);
    }
    if (token.kind === 'admin' && token.revokedAt === null && app.stores.tokens.activeAdminCount() <= 1) {
      throw problem('conflict', 'This is the last active admin token; create another admin token before revoking it.');
    }
    return app.stores.tokens.revoke(request.actor!, id, reason);
  });
};
