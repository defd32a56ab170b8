/**
 * `POST /sdk/v1/evaluate`: server-side evaluation with the shared core, for clients that do not evaluate locally.
 * Body `{ context, flags?: [keys] }` → `{ environment, version, flags: { <key>: { value, variant?, reason, errorCode? } } }`.
 * Without `flags`, every flag of the environment is evaluated.
 *
 * An ordinary fastify route: the SDK plugin's onRequest hook authenticates (server/auth/hooks.ts), the body is
 * validated with the OpenAPI document's `EvaluateRequest` schema, and the answer is serialized by fastify's
 * fast-json-stringify from the document's `EvaluateResponse` schema. That schema must name every field the core
 * puts in a result (the serializer drops anything it does not name): test/server/evaluate-route.test.ts compares
 * the route's answers with the core's on the golden evaluation cases.
 */
import type { FastifyPluginAsync } from 'fastify';
import { evaluate, evaluateFlag, type CompiledEnvironment, type EvaluationContext, type EvaluationDetail, type JsonValue } from '@aviary/sdk/core';
import { problem } from '../errors.js';
import { routeSchema } from '../openapi/validation.js';
import { responseSchema } from '../openapi/spec.js';
import { CompiledEnvironmentCache } from './compiled-cache.js';

/** The body as the spec's `EvaluateRequest` schema has already checked it (fastify validates before the handler). */
interface EvaluateBody {
  context: EvaluationContext;
  flags?: string[];
}

const answerSchema = responseSchema('sdkEvaluate', 200);
if (answerSchema === undefined) throw new Error('The OpenAPI document has no JSON 200 response for sdkEvaluate');

export const evaluateRoutes: FastifyPluginAsync = async (app) => {
  const cache = new CompiledEnvironmentCache(app.snapshots, app.changeFeed);
  app.addHook('onClose', async () => cache.close());

  // The body schema (`EvaluateRequest`: context of scalars or arrays of scalars, at most 1000 flag keys, nothing
  // else) is enforced before this runs, with a JSON-pointer path per field.
  app.post<{ Body: EvaluateBody }>('/evaluate', { schema: { ...routeSchema('sdkEvaluate'), response: { 200: answerSchema } } }, (request, reply) => {
    const { context, flags: keys } = request.body;
    const { environment, tokenId } = request.sdk!;
    const env = cache.get(environment);
    if (!env) throw problem('not-found', `Environment "${environment}" no longer exists.`);
    // Charged to the key's evaluation-time allowance (server/limits/evaluation-time.ts; 429 when spent).
    const flags = app.evaluationTime.run(tokenId, () => evaluateAll(env, context, keys));
    // Synchronous handler, `reply.send`: no promise per request on the hot path.
    reply.send({ environment, version: env.version, flags });
  });
};

/** Every flag of the environment, or the requested keys (each once), evaluated for `context`. */
function evaluateAll(env: CompiledEnvironment, context: EvaluationContext, keys: string[] | undefined): Record<string, EvaluationDetail> {
  const flags: Record<string, EvaluationDetail> = {};
  if (keys === undefined) {
    // Flag keys match ^[a-z0-9][a-z0-9._-]*$: plain own properties (a plain object stays a fast one to build and
    // serialize; a null-prototype object would be a dictionary).
    for (const [key, flag] of env.flags) flags[key] = evaluateFlag<JsonValue>(flag, context, null, true);
  } else {
    // Requested keys are any strings ("constructor", "__proto__"): each once, as an own property. A known flag
    // answers with its own kind (there is no caller default to match), an unknown key FLAG_NOT_FOUND.
    for (const key of keys) {
      if (Object.hasOwn(flags, key)) continue;
      const flag = env.flags.get(key);
      const detail = flag ? evaluateFlag<JsonValue>(flag, context, null, true) : evaluate<JsonValue>(env, key, context, null);
      if (key === '__proto__') Object.defineProperty(flags, key, { value: detail, enumerable: true, writable: true, configurable: true });
      else flags[key] = detail;
    }
  }
  return flags;
}
