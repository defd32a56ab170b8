/**
 * Scheduled changes (CONTRACT §11), registered inside the admin scope (`/api/v1`, admin auth):
 *   GET|POST   /flags/{key}/environments/{env}/schedules
 *   GET|DELETE /flags/{key}/environments/{env}/schedules/{id}   (DELETE cancels a pending one: answers it `cancelled`)
 * Bodies are checked against the OpenAPI schemas, then by the store (the time, the state against the flag like a PUT).
 */
import type { FastifyInstance } from 'fastify';
import { problem } from '../errors.js';
import { parseTimeParameter } from '../openapi/time.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';

export async function scheduleRoutes(app: FastifyInstance): Promise<void> {
  const path = '/flags/:key/environments/:env/schedules';
  const { store, runner } = app.schedules;

  app.get<RouteOf<'listSchedules'>>(path, { schema: routeSchema('listSchedules') }, async (request) => {
    const { key, env } = request.params;
    return { schedules: await store.list(env, key, request.query.status) };
  });

  app.post<RouteOf<'createSchedule'>>(path, { schema: routeSchema('createSchedule') }, async (request, reply) => {
    const { key, env } = request.params;
    const { at, action, state, reason } = request.body;
    const created = await store.create(request.actor!, env, key, {
      at: typeof at === 'number' ? at : parseTimeParameter(at),
      action,
      ...(state !== undefined ? { state } : {}),
      reason: reason ?? null,
    });
    // Its time may be near (or already here): look now rather than at the next poll.
    runner.wake();
    return reply.code(201).send(created);
  });

  app.get<RouteOf<'getSchedule'>>(`${path}/:id`, { schema: routeSchema('getSchedule') }, async (request) => {
    const { key, env, id } = request.params;
    const found = await store.get(env, key, id);
    if (!found) throw problem('not-found', `No schedule "${id}" of "${key}" in "${env}".`);
    return found;
  });

  app.delete<RouteOf<'cancelSchedule'>>(`${path}/:id`, { schema: routeSchema('cancelSchedule') }, async (request) => {
    const { key, env, id } = request.params;
    return store.cancel(request.actor!, env, key, id);
  });
}
