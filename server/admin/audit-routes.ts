/** `GET /api/v1/audit`: newest first; filters flag, environment, resourceType, action, from/to; cursor pagination. */
import type { FastifyPluginAsync } from 'fastify';
import { validationError, type ProblemIssue } from '../errors.js';
import { decodeCursor } from '../storage/audit-store.js';
import { queryInt, queryString, queryTime, type Query } from './query.js';

export const auditRoutes: FastifyPluginAsync = async (app) => {
  app.get('/audit', async (request) => {
    const q = request.query as Query;
    const issues: ProblemIssue[] = [];
    const flag = queryString(q, 'flag', issues);
    const environment = queryString(q, 'environment', issues);
    const resourceType = queryString(q, 'resourceType', issues);
    const action = queryString(q, 'action', issues);
    const from = queryTime(q, 'from', issues);
    const to = queryTime(q, 'to', issues);
    const limit = queryInt(q, 'limit', issues, 1, 500);
    const cursorRaw = queryString(q, 'cursor', issues);
    let cursor: number | undefined;
    if (cursorRaw !== undefined) {
      const c = decodeCursor(cursorRaw);
      if (c === null) issues.push({ path: '/query/cursor', message: 'is not a cursor from a previous page' });
      else cursor = c;
    }
    if (issues.length) throw validationError(issues);
    return app.stores.audit.list({
      ...(flag !== undefined ? { flag } : {}),
      ...(environment !== undefined ? { environment } : {}),
      ...(resourceType !== undefined ? { resourceType } : {}),
      ...(action !== undefined ? { action } : {}),
      ...(from !== undefined ? { from } : {}),
      ...(to !== undefined ? { to } : {}),
      ...(limit !== undefined ? { limit } : {}),
      ...(cursor !== undefined ? { cursor } : {}),
    });
  });
};
