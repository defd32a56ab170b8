/** `GET|POST /api/v1/tokens`, `GET|DELETE /api/v1/tokens/{id}`. */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { problem, validationError, type ProblemIssue } from '../errors.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';

export const tokenRoutes: FastifyPluginAsync = async (app) => {
  app.get<RouteOf<'listTokens'>>('/tokens', { schema: routeSchema('listTokens') }, async () => ({ tokens: await app.stores.tokens.list() }));

  app.post<RouteOf<'createToken'>>('/tokens', { schema: routeSchema('createToken') }, async (request, reply) => {
    // The schema has checked the fields one by one; what is left is how they combine, and what exists.
    const { kind, environment, name, clientSide } = request.body;
    const issues: ProblemIssue[] = [];
    if (name.trim().length === 0) issues.push({ path: '/name', message: 'must not be blank' });
    if (kind === 'sdk') {
      if (typeof environment !== 'string') issues.push({ path: '/environment', message: 'is required for SDK tokens' });
      else if (!(await app.stores.environments.get(environment))) issues.push({ path: '/environment', message: `no environment "${environment}"` });
    } else if (environment !== undefined && environment !== null) {
      issues.push({ path: '/environment', message: 'admin tokens are not scoped to an environment' });
    }
    // CONTRACT §16: an SDK key is server-side (secret) unless created with clientSide: true (public, for browsers).
    if (clientSide === true && kind !== 'sdk') issues.push({ path: '/clientSide', message: 'only SDK keys are client-side or server-side' });
    // relay: begin (issue 13) — a relay token covers the listed environments (all when omitted).
    const environments = request.body.environments ?? null;
    if (kind === 'relay') issues.push(...(await relayScopeIssues(app, environments)));
    else if (kind === 'sdk' && environments !== null)
      issues.push({ path: '/environments', message: 'SDK keys read one environment: use "environment"' });
    // relay: end
    if (issues.length) throw validationError(issues);
    const created = await app.stores.tokens.create(request.actor!, {
      kind,
      environment: kind === 'sdk' ? (environment ?? null) : null,
      name,
      clientSide: clientSide === true,
      ...(kind === 'relay' ? { environments } : {}),
    });
    // The secret is in this response and nowhere else: never cache it.
    return reply.header('cache-control', 'no-store').header('location', `/api/v1/tokens/${created.id}`).code(201).send(created);
  });

  app.get<RouteOf<'getToken'>>('/tokens/:id', { schema: routeSchema('getToken') }, async (request) => {
    const token = await app.stores.tokens.get(request.params.id);
    if (!token) throw problem('not-found', `No token "${request.params.id}".`);
    return token;
  });

  app.delete<RouteOf<'deleteToken'>>('/tokens/:id', { schema: routeSchema('deleteToken') }, async (request) => {
    const { id } = request.params;
    const token = await app.stores.tokens.get(id);
    if (!token) throw problem('not-found', `No token "${id}".`);
    if (token.configured && token.revokedAt === null) {
      throw problem('conflict', `Token "${token.name}" comes from the server's environment variables; unset the variable and restart to revoke it.`);
    }
    if (token.kind === 'admin' && token.revokedAt === null && (await app.stores.tokens.activeAdminCount()) <= 1) {
      throw problem('conflict', 'This is the last active admin token; create another admin token before revoking it.');
    }
    return (await app.stores.tokens.revoke(request.actor!, id, request.body?.reason ?? null))!;
  });
};

// relay: begin (issue 13)
/** What is wrong with a relay token's scope: every environment listed must exist. */
async function relayScopeIssues(app: FastifyInstance, environments: readonly string[] | null): Promise<ProblemIssue[]> {
  if (environments === null) return [];
  const known = new Set((await app.stores.environments.list()).map((e) => e.key));
  return environments.flatMap((env, i) => (known.has(env) ? [] : [{ path: `/environments/${i}`, message: `no environment "${env}"` }]));
}
// relay: end
