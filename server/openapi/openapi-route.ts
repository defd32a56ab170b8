/**
 * `GET /openapi.json`: the spec the server validates with, as JSON. The string is built once at load; the route
 * only sends it.
 */
import type { FastifyInstance } from 'fastify';
import { loadSpec } from './spec.js';

/** Registers `GET /openapi.json` (no authentication: the contract is public). */
export async function openapiRoute(app: FastifyInstance): Promise<void> {
  const { json } = loadSpec();
  app.get('/openapi.json', (_request, reply) => {
    reply.header('cache-control', 'public, max-age=300').type('application/json; charset=utf-8').send(json);
  });
}
