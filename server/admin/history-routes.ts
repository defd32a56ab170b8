/**
 * History of a flag's state per environment (CONTRACT §11):
 *   GET  /api/v1/flags/{key}/environments/{env}/history        (newest first, cursor pagination like the audit log)
 *   GET  /api/v1/flags/{key}/environments/{env}/history/diff   (?from=&to=, default the last write: changed members as JSON pointers)
 *   POST /api/v1/flags/{key}/environments/{env}/revert         ({ version, reason? }: that version's state as a new one)
 * `GET .../environments/{env}?at=` (the state at a time) lives with the state routes (flag-state-routes.ts).
 */
import type { FastifyPluginAsync } from 'fastify';
import { problem, validationError } from '../errors.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';
import { decodeHistoryCursor } from '../storage/history-store.js';
import { ifMatch, stateETag } from './preconditions.js';

export const historyRoutes: FastifyPluginAsync = async (app) => {
  /** 404 unless the flag and the environment exist (an empty history is never an answer for a typo). */
  const requireFlagAndEnv = async (key: string, env: string) => {
    if (!(await app.stores.flags.get(key))) throw problem('not-found', `No flag "${key}".`);
    if (app.snapshots.version(env) === null && !(await app.stores.environments.get(env))) throw problem('not-found', `No environment "${env}".`);
  };

  app.get<RouteOf<'listFlagStateHistory'>>(
    '/flags/:key/environments/:env/history',
    { schema: routeSchema('listFlagStateHistory') },
    async (request) => {
      const { key, env } = request.params;
      const { limit, cursor } = request.query;
      let position: number | undefined;
      if (cursor !== undefined) {
        const decoded = decodeHistoryCursor(cursor);
        if (decoded === null) throw validationError([{ path: '/query/cursor', message: 'is not a cursor from a previous page' }]);
        position = decoded;
      }
      await requireFlagAndEnv(key, env);
      return app.stores.history.list(env, key, {
        ...(position !== undefined ? { cursor: position } : {}),
        ...(limit !== undefined ? { limit } : {}),
      });
    },
  );

  app.get<RouteOf<'diffFlagStateVersions'>>(
    '/flags/:key/environments/:env/history/diff',
    { schema: routeSchema('diffFlagStateVersions') },
    async (request) => {
      const { key, env } = request.params;
      await requireFlagAndEnv(key, env);
      let to = request.query.to;
      if (to === undefined) {
        const current = await app.stores.states.getState(env, key);
        if (!current) throw problem('not-found', `Flag "${key}" has no state in "${env}".`);
        to = current.version;
      }
      const diff = await app.stores.history.diff(env, key, request.query.from ?? Math.max(to - 1, 1), to);
      if ('missing' in diff) throw problem('not-found', `Flag "${key}" has no version ${diff.missing} in "${env}".`);
      return diff;
    },
  );

  app.post<RouteOf<'revertFlagState'>>('/flags/:key/environments/:env/revert', { schema: routeSchema('revertFlagState') }, async (request, reply) => {
    const { key, env } = request.params;
    const { version, reason = null } = request.body;
    const precondition = ifMatch(request.headers['if-match'], stateETag, `The state of "${key}" in "${env}"`);
    const result = await app.stores.states.revert(request.actor!, env, key, version, reason, precondition);
    return reply
      .header('etag', `"${stateETag(result.state.version)}"`)
      .code(200)
      .send({ ...result.state, environmentVersion: result.environmentVersion });
  });
};
