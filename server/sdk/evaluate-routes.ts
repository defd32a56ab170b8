/**
 * `POST /sdk/v1/evaluate`: server-side evaluation with the shared core, for clients that do not evaluate locally.
 * Body `{ context, flags?: [keys] }` → `{ environment, version, flags: { <key>: { value, variant?, reason } } }`.
 * Without `flags`, every flag of the environment is evaluated.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { EvaluationContext } from '@aviary/sdk/core';
import { problem } from '../errors.js';
import { CompiledEnvironmentCache } from './compiled-cache.js';
import { evaluateAnswerJson } from './evaluate-json.js';
import { installEvaluateFastPath } from './evaluate-fast-path.js';
import { requestBody } from '../openapi/validation.js';

/** The body as the spec's `EvaluateRequest` schema has already checked it (fastify validates before the handler). */
interface EvaluateBody {
  context: EvaluationContext;
  flags?: string[];
}

export const evaluateRoutes: FastifyPluginAsync = async (app) => {
  const cache = new CompiledEnvironmentCache(app.snapshots, app.changeFeed);
  app.addHook('onClose', async () => cache.close());
  // The plain successful request is served in front of fastify's pipeline (server/sdk/evaluate-fast-path.ts); the
  // route below answers everything else, and is what the OpenAPI document describes for both.
  const disableFastPath = installEvaluateFastPath(app, cache);
  app.addHook('preClose', async () => disableFastPath());

  // The body schema (openapi/openapi.yaml `EvaluateRequest`: context of scalars or arrays of scalars, at most 1000
  // flag keys, nothing else) is enforced by the validator before this runs, with a JSON-pointer path per field.
  app.post<{ Body: EvaluateBody }>('/evaluate', { schema: { body: requestBody('sdkEvaluate') } }, async (request, reply) => {
    const { context: ctx, flags: keys } = request.body;
    const { environment } = request.sdk!;
    const env = cache.get(environment);
    if (!env) throw problem('not-found', `Environment "${environment}" no longer exists.`);
    // The answer is written as JSON while evaluating (server/sdk/evaluate-json.ts): no result objects, no stringify.
    // Within the key's evaluation-time allowance (server/limits/evaluation-time.ts), or 429.
    return reply.type('application/json; charset=utf-8').send(app.evaluationTime.run(request.sdk!.tokenId, () => evaluateAnswerJson(env, environment, ctx, keys)));
  });
};
