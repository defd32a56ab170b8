/**
 * Change requests (CONTRACT §11; the store is server/storage/change-request-store.ts):
 *   GET  /api/v1/change-requests?environment=&status=&flag=&limit=
 *   GET  /api/v1/change-requests/{id}
 *   POST /api/v1/change-requests/{id}/approve|reject|apply   ({ reason? })
 * Requests are created by `PUT /api/v1/flags/{key}/environments/{env}` in an environment that requires approval
 * (flag-state-routes.ts).
 */
import type { FastifyPluginAsync } from 'fastify';
import { problem } from '../errors.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';

export const changeRequestRoutes: FastifyPluginAsync = async (app) => {
  const store = app.stores.changeRequests;

  app.get<RouteOf<'listChangeRequests'>>('/change-requests', { schema: routeSchema('listChangeRequests') }, async (request) => {
    const { environment, status, flag, limit } = request.query;
    return { changeRequests: await store.list({ environment, status, flag, limit: limit ?? 100 }) };
  });

  app.get<RouteOf<'getChangeRequest'>>('/change-requests/:id', { schema: routeSchema('getChangeRequest') }, async (request) => {
    const found = await store.get(request.params.id);
    if (!found) throw problem('not-found', `No change request "${request.params.id}".`);
    return found;
  });

  app.post<RouteOf<'approveChangeRequest'>>('/change-requests/:id/approve', { schema: routeSchema('approveChangeRequest') }, async (request) =>
    store.approve(request.actor!, request.params.id, request.body?.reason ?? null),
  );

  app.post<RouteOf<'rejectChangeRequest'>>('/change-requests/:id/reject', { schema: routeSchema('rejectChangeRequest') }, async (request) =>
    store.reject(request.actor!, request.params.id, request.body?.reason ?? null),
  );

  app.post<RouteOf<'applyChangeRequest'>>('/change-requests/:id/apply', { schema: routeSchema('applyChangeRequest') }, async (request) => {
    const { request: changeRequest, result } = await store.apply(request.actor!, request.params.id, request.body?.reason ?? null);
    return { changeRequest, state: { ...result.state, environmentVersion: result.environmentVersion } };
  });
};
