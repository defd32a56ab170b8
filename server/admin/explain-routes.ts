/**
 * `POST /api/v1/flags/{key}/environments/{env}/explain`: why a context gets the variant it gets. The decision and its
 * trace come from the shared evaluation core (`explainFlag`, sdk/core/explain.ts) run on this server's live state of
 * the environment (what its SDKs evaluate), compiled as the SDK evaluation route compiles it; the kill switch's when
 * and why come from the stored state. Changes nothing.
 */
import type { FastifyPluginAsync } from 'fastify';
import { compileEnvironment, explainFlag, lazyDfa, type EvaluationContext } from '@aviary/sdk/core';
import { problem } from '../errors.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';

export const explainRoutes: FastifyPluginAsync = async (app) => {
  app.post<RouteOf<'explainFlag'>>('/flags/:key/environments/:env/explain', { schema: routeSchema('explainFlag') }, async (request) => {
    const { key, env } = request.params;
    const snapshot = app.snapshots.get(env);
    if (!snapshot) throw problem('not-found', `No environment "${env}".`);
    if (!snapshot.flags.some((f) => f.key === key)) {
      const definition = await app.stores.flags.get(key);
      throw problem('not-found', definition ? `Flag "${key}" is archived: SDKs do not evaluate it.` : `No flag "${key}".`);
    }
    // As the SDK evaluation route compiles it (server/sdk-api/compiled-cache.ts): an explain is rare, compiled afresh.
    const compiled = compileEnvironment(snapshot, { patternEngine: lazyDfa });
    const flag = compiled.flags.get(key)!;
    const explanation = explainFlag(flag, request.body.context as EvaluationContext);
    const state = await app.stores.states.getState(env, key);
    return {
      environment: env,
      version: compiled.version,
      killed: state?.killedAt ? { at: state.killedAt, reason: state.killReason ?? null } : null,
      ...explanation,
    };
  });
};
