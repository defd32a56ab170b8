/**
 * Canary routes (CONTRACT §6), registered inside the admin scope (`/api/v1`, admin auth):
 * `GET|PUT|DELETE /flags/{key}/environments/{env}/canary` and `POST .../canary/{pause|resume|advance|rollback|promote}`.
 * Bodies are checked against the OpenAPI schemas, then semantically (variants, segments, ramp) by the document
 * validator; any problem is a problem+json with the field path, and nothing changes.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { problem } from '../errors.js';
import type { OperationId, RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';
import type { ManualAction } from './state-machine.js';

const ACTIONS = {
  pause: 'pauseCanary',
  resume: 'resumeCanary',
  advance: 'advanceCanary',
  rollback: 'rollbackCanary',
  promote: 'promoteCanary',
} as const satisfies Record<ManualAction, OperationId>;

function actorOf(request: FastifyRequest) {
  if (!request.actor) throw problem('unauthorized', 'An admin token is required.');
  return request.actor;
}

export async function canaryRoutes(app: FastifyInstance): Promise<void> {
  const path = '/flags/:key/environments/:env/canary';

  app.get<RouteOf<'getCanary'>>(path, { schema: routeSchema('getCanary') }, async (request) =>
    app.canaries.status(request.params.env, request.params.key),
  );

  app.put<RouteOf<'putCanary'>>(path, { schema: routeSchema('putCanary') }, async (request, reply) => {
    const { env, key } = request.params;
    const { run, created } = await app.canaries.put(env, key, request.body, actorOf(request));
    return reply.code(created ? 201 : 200).send(await app.canaries.statusOf(env, key, run));
  });

  app.delete<RouteOf<'deleteCanary'>>(path, { schema: routeSchema('deleteCanary') }, async (request, reply) => {
    await app.canaries.remove(request.params.env, request.params.key, actorOf(request));
    return reply.code(204).send();
  });

  for (const [action, operationId] of Object.entries(ACTIONS) as Array<[ManualAction, (typeof ACTIONS)[ManualAction]]>) {
    app.post<RouteOf<typeof operationId>>(`${path}/${action}`, { schema: routeSchema(operationId) }, async (request) => {
      const { env, key } = request.params;
      const run = await app.canaries.manual(env, key, action, actorOf(request), request.body?.reason);
      return app.canaries.statusOf(env, key, run);
    });
  }
}
