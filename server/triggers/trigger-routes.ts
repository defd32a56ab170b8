/**
 * Triggers (CONTRACT §13), registered inside the admin scope (`/api/v1`, admin auth):
 *   GET|POST /flags/{key}/environments/{env}/triggers       (POST answers the URL once)
 *   DELETE   /flags/{key}/environments/{env}/triggers/{id}  (revokes: the URL answers 404 from then on)
 *
 * The URL's origin is the one the request reached: `request.protocol` and `request.host`, which fastify takes from
 * `X-Forwarded-Proto` / `X-Forwarded-Host` only when `AVIARY_TRUST_PROXY` trusts the proxy (else the socket's
 * protocol and the `Host` header).
 */
import type { FastifyInstance } from 'fastify';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';

export async function triggerRoutes(app: FastifyInstance): Promise<void> {
  const path = '/flags/:key/environments/:env/triggers';
  const { store, rateLimit } = app.triggers;

  app.get<RouteOf<'listTriggers'>>(path, { schema: routeSchema('listTriggers') }, async (request) => {
    const { key, env } = request.params;
    return { triggers: await store.list(env, key) };
  });

  app.post<RouteOf<'createTrigger'>>(path, { schema: routeSchema('createTrigger') }, async (request, reply) => {
    const { key, env } = request.params;
    const { action, name } = request.body;
    const { trigger, secret } = await store.create(request.actor!, env, key, { action, name: name.trim() });
    const url = `${request.protocol}://${request.host}/hooks/v1/triggers/${secret}`;
    return reply.code(201).send({ ...trigger, url });
  });

  app.delete<RouteOf<'deleteTrigger'>>(`${path}/:id`, { schema: routeSchema('deleteTrigger') }, async (request) => {
    const { key, env, id } = request.params;
    const deleted = await store.delete(request.actor!, env, key, id);
    rateLimit.forget(id);
    return deleted;
  });
}
