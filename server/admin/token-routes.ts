/** `GET|POST /api/v1/tokens`, `GET|DELETE /api/v1/tokens/{id}`, `POST /api/v1/tokens/{id}/rotate`. */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { problem, validationError, type ProblemIssue } from '../errors.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';
import type { Role } from '../auth/roles.js';

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
    const access = await tokenAccess(app, request.body, issues);
    if (issues.length) throw validationError(issues);
    const created = await app.stores.tokens.create(request.actor!, {
      kind,
      environment: kind === 'sdk' ? (environment ?? null) : null,
      name,
      clientSide: clientSide === true,
      ...access,
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

  // ---- roles and tokens (issue 17): rotation ----
  app.post<RouteOf<'rotateToken'>>('/tokens/:id/rotate', { schema: routeSchema('rotateToken') }, async (request, reply) => {
    const issues: ProblemIssue[] = [];
    const expiresAt = futureTime(app, request.body?.expiresAt, '/expiresAt', issues);
    if (issues.length) throw validationError(issues);
    const overlapMs = (request.body?.overlapSeconds ?? DEFAULT_OVERLAP_SECONDS) * 1000;
    const rotated = await app.stores.tokens.rotate(request.actor!, request.params.id, { overlapMs, expiresAt });
    if (rotated === null) throw problem('not-found', `No token "${request.params.id}".`);
    if ('conflict' in rotated) throw problem('conflict', rotated.conflict);
    return reply.header('cache-control', 'no-store').header('location', `/api/v1/tokens/${rotated.id}`).code(201).send(rotated);
  });
  // ---- end of roles and tokens ----
};

// ---- roles and tokens (issue 17) ----
/** How long a rotated token's old secret keeps working when the request does not say. */
export const DEFAULT_OVERLAP_SECONDS = 3600;

/** `expiresAt` of a request: epoch ms in the future, or null; an issue when it is not in the future. */
function futureTime(app: FastifyInstance, value: string | null | undefined, path: string, issues: ProblemIssue[]): number | null {
  if (value === undefined || value === null) return null;
  const ms = Date.parse(value);
  if (!Number.isFinite(ms) || ms <= app.now()) {
    issues.push({ path, message: 'must be a time in the future' });
    return null;
  }
  return ms;
}

/** Role, environments and expiry of a new token (CONTRACT §14), checked against its kind and the environments that exist. */
async function tokenAccess(
  app: FastifyInstance,
  body: { kind: string; role?: Role | undefined; environments?: string[] | undefined; expiresAt?: string | null | undefined },
  issues: ProblemIssue[],
): Promise<{ role: Role | null; environments: string[] | null; expiresAt: number | null }> {
  const expiresAt = futureTime(app, body.expiresAt, '/expiresAt', issues);
  if (body.kind !== 'admin') {
    if (body.role !== undefined) issues.push({ path: '/role', message: 'only admin tokens have a role' });
    if (body.environments !== undefined && body.kind === 'sdk')
      issues.push({ path: '/environments', message: 'SDK keys read one environment: use environment' });
    return { role: null, environments: body.environments ?? null, expiresAt };
  }
  const role = body.role ?? 'admin';
  if (body.environments !== undefined) {
    if (role !== 'editor' && role !== 'oncall')
      issues.push({ path: '/environments', message: `only editor and oncall tokens are limited to environments, not ${role}` });
    for (const [i, env] of body.environments.entries()) {
      if (!(await app.stores.environments.get(env))) issues.push({ path: `/environments/${i}`, message: `no environment "${env}"` });
    }
  }
  return { role, environments: body.environments ?? null, expiresAt };
}
// ---- end of roles and tokens ----
