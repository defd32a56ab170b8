/**
 * `GET|POST /api/v1/environments`, `GET|PATCH /api/v1/environments/{env}` (PATCH: `name`, `requireApproval`); the panic
 * button lives in flag-state-routes.
 */
import type { FastifyPluginAsync } from 'fastify';
import { problem } from '../errors.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';

export const environmentRoutes: FastifyPluginAsync = async (app) => {
  app.get<RouteOf<'listEnvironments'>>('/environments', { schema: routeSchema('listEnvironments') }, async () => ({
    environments: await app.stores.environments.list(),
  }));

  app.post<RouteOf<'createEnvironment'>>('/environments', { schema: routeSchema('createEnvironment') }, async (request, reply) => {
    const { key, name = key } = request.body;
    const created = await app.stores.environments.create(request.actor!, { key, name });
    if (!created) throw problem('conflict', `Environment "${key}" already exists.`);
    return reply.header('location', `/api/v1/environments/${key}`).code(201).send(created);
  });

  app.get<RouteOf<'getEnvironment'>>('/environments/:env', { schema: routeSchema('getEnvironment') }, async (request) => {
    const env = await app.stores.environments.get(request.params.env);
    if (!env) throw problem('not-found', `No environment "${request.params.env}".`);
    return env;
  });

  app.patch<RouteOf<'updateEnvironment'>>('/environments/:env', { schema: routeSchema('updateEnvironment') }, async (request) => {
    const { name, requireApproval } = request.body;
    return app.stores.environments.update(request.actor!, request.params.env, { name, requireApproval });
  });
};
