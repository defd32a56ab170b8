/**
 * `POST /sdk/v1/evaluate`: server-side evaluation with the shared core, for clients that do not evaluate locally.
 * Body `{ context, flags?: [keys] }` → `{ environment, version, flags: { <key>: { value, variant?, reason } } }`.
 * Without `flags`, every flag of the environment is evaluated.
 */
import type { FastifyPluginAsync } from 'fastify';
import { evaluate, evaluateFlag, type EvaluationContext } from '@aviary/sdk/core';
import { problem } from '../errors.js';
import { CompiledEnvironmentCache } from './compiled-cache.js';
import { EvaluateAnswer } from './evaluate-json.js';
import { requestBody } from '../openapi/validation.js';

/** The body as the spec's `EvaluateRequest` schema has already checked it (fastify validates before the handler). */
interface EvaluateBody {
  context: EvaluationContext;
  flags?: string[];
}

export const evaluateRoutes: FastifyPluginAsync = async (app) => {
  const cache = new CompiledEnvironmentCache(app.snapshots, app.changeFeed);
  app.addHook('onClose', async () => cache.close());

  // The body schema (openapi/openapi.yaml `EvaluateRequest`: context of scalars or arrays of scalars, at most 1000
  // flag keys, nothing else) is enforced by the validator before this runs, with a JSON-pointer path per field.
  app.post<{ Body: EvaluateBody }>('/evaluate', { schema: { body: requestBody('sdkEvaluate') } }, async (request, reply) => {
    const { context: ctx, flags: keys } = request.body;
    const { environment } = request.sdk!;
    const env = cache.get(environment);
    if (!env) throw problem('not-found', `Environment "${environment}" no longer exists.`);
    // The answer is written as JSON while evaluating (server/sdk/evaluate-json.ts): no result object, no stringify.
    const answer = new EvaluateAnswer(environment, env.version);
    if (keys === undefined) {
      for (const [key, flag] of env.flags) answer.add(key, evaluateFlag(flag, ctx, null, true));
    } else {
      const seen = new Set<string>();
      for (const key of keys) {
        if (seen.has(key)) continue;
        seen.add(key);
        const flag = env.flags.get(key);
        answer.add(key, flag ? evaluateFlag(flag, ctx, null, true) : evaluate(env, key, ctx, null));
      }
    }
    return reply.type('application/json; charset=utf-8').send(answer.finish());
  });
};
