/** Segments: `GET|POST /api/v1/segments`, `GET|PUT|DELETE /api/v1/segments/{key}` (ETag "r<revision>", If-Match). */
import type { FastifyPluginAsync } from 'fastify';
import { problem } from '../errors.js';
import { parseIfMatch } from '../storage/flag-store.js';
import { requireBodyObject } from './body.js';
import { requestBody } from '../openapi/validation.js';

export const segmentRoutes: FastifyPluginAsync = async (app) => {
  app.get('/segments', async () => ({ segments: app.stores.segments.list() }));

  app.post('/segments', { schema: { body: requestBody('createSegment') } }, async (request, reply) => {
    const segment = app.stores.segments.create(request.actor!, requireBodyObject(request.body));
    return reply.code(201).header('etag', `"r${segment.revision}"`).header('location', `/api/v1/segments/${segment.key}`).send(segment);
  });

  app.get<{ Params: { key: string } }>('/segments/:key', async (request, reply) => {
    const segment = app.stores.segments.get(request.params.key);
    if (!segment) throw problem('not-found', `No segment "${request.params.key}".`);
    return reply.header('etag', `"r${segment.revision}"`).send(segment);
  });

  app.put<{ Params: { key: string } }>('/segments/:key', { schema: { body: requestBody('putSegment') } }, async (request, reply) => {
    const { segment, created } = app.stores.segments.put(request.actor!, request.params.key, requireBodyObject(request.body), parseIfMatch(request.headers['if-match']));
    return reply.code(created ? 201 : 200).header('etag', `"r${segment.revision}"`).send(segment);
  });

  app.delete<{ Params: { key: string } }>('/segments/:key', async (request, reply) => {
    app.stores.segments.delete(request.actor!, request.params.key, parseIfMatch(request.headers['if-match']));
    return reply.code(204).send();
  });
};
