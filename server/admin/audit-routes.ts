/** `GET /api/v1/audit`: newest first; filters flag, search (key contains), environment, resourceType, action, from/to; cursor pagination. */
import type { FastifyPluginAsync } from 'fastify';
import { validationError } from '../errors.js';
import type { RouteOf } from '../openapi/route-types.js';
import { parseTimeParameter } from '../openapi/time.js';
import { routeSchema } from '../openapi/validation.js';
import { decodeCursor, type AuditFilter } from '../storage/audit-store.js';

export const auditRoutes: FastifyPluginAsync = async (app) => {
  app.get<RouteOf<'listAudit'>>('/audit', { schema: routeSchema('listAudit') }, async (request) => {
    // Types, lengths, the limit's range and the times' forms are the schema's; the cursor's meaning is ours.
    const { flag, search, environment, resourceType, action, from, to, limit, cursor } = request.query;
    const filter: AuditFilter = {
      ...(flag !== undefined ? { flag } : {}),
      ...(search !== undefined ? { search } : {}),
      ...(environment !== undefined ? { environment } : {}),
      ...(resourceType !== undefined ? { resourceType } : {}),
      ...(action !== undefined ? { action } : {}),
      ...(from !== undefined ? { from: parseTimeParameter(from) } : {}),
      ...(to !== undefined ? { to: parseTimeParameter(to) } : {}),
      ...(limit !== undefined ? { limit } : {}),
    };
    if (cursor !== undefined) {
      const position = decodeCursor(cursor);
      if (position === null) throw validationError([{ path: '/query/cursor', message: 'is not a cursor from a previous page' }]);
      filter.cursor = position;
    }
    return app.stores.audit.list(filter);
  });
};
