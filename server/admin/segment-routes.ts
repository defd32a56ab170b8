/** Segments: `GET|POST /api/v1/segments`, `GET|PUT|DELETE /api/v1/segments/{key}` (ETag "r<revision>", If-Match). */
import type { FastifyPluginAsync } from 'fastify';
import { problem } from '../errors.js';
import { ifMatch, segmentETag } from './preconditions.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';

export const segmentRoutes: FastifyPluginAsync = async (app) => {
  app.get<RouteOf<'listSegments'>>('/segments', { schema: routeSchema('listSegments') }, async () => ({
    segments: await app.stores.segments.list(),
  }));

  app.post<RouteOf<'createSegment'>>('/segments', { schema: routeSchema('createSegment') }, async (request, reply) => {
    const segment = await app.stores.segments.create(request.actor!, request.body);
    return reply.header('etag', `"r${segment.revision}"`).header('location', `/api/v1/segments/${segment.key}`).code(201).send(segment);
  });

  app.get<RouteOf<'getSegment'>>('/segments/:key', { schema: routeSchema('getSegment') }, async (request, reply) => {
    const segment = await app.stores.segments.get(request.params.key);
    if (!segment) throw problem('not-found', `No segment "${request.params.key}".`);
    return reply.header('etag', `"r${segment.revision}"`).code(200).send(segment);
  });

  app.put<RouteOf<'putSegment'>>('/segments/:key', { schema: routeSchema('putSegment') }, async (request, reply) => {
    const { segment, created } = await app.stores.segments.put(
      request.actor!,
      request.params.key,
      request.body,
      ifMatch(request.headers['if-match'], segmentETag, `Segment "${request.params.key}"`),
    );
    return reply
      .header('etag', `"r${segment.revision}"`)
      .code(created ? 201 : 200)
      .send(segment);
  });

  app.delete<RouteOf<'deleteSegment'>>('/segments/:key', { schema: routeSchema('deleteSegment') }, async (request, reply) => {
    await app.stores.segments.delete(
      request.actor!,
      request.params.key,
      ifMatch(request.headers['if-match'], segmentETag, `Segment "${request.params.key}"`),
    );
    return reply.code(204).send();
  });
};
