/** `GET /api/v1/me`: the caller, its role, and the operations it may call (the console hides the rest). */
import type { FastifyPluginAsync } from 'fastify';
import { actorKind } from '../storage/writer.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';
import { allowedOperations, roleOf, scopeOf } from '../auth/roles.js';

export const meRoutes: FastifyPluginAsync = async (app) => {
  app.get<RouteOf<'getMe'>>('/me', { schema: routeSchema('getMe') }, async (request) => {
    const actor = request.actor!;
    const kind = actorKind(actor) === 'person' ? 'person' : 'token';
    const token = actor.tokenId ? await app.stores.tokens.get(actor.tokenId) : null;
    return {
      actor: {
        kind,
        name: actor.name,
        ...(actor.tokenId ? { tokenId: actor.tokenId } : {}),
        ...(actor.subject ? { subject: actor.subject } : {}),
        ...(actor.email !== undefined ? { email: actor.email } : {}),
        ...(token ? { expiresAt: token.expiresAt } : {}),
      },
      role: roleOf(actor),
      environments: scopeOf(actor)?.slice() ?? null,
      operations: allowedOperations(actor),
    };
  });
};
