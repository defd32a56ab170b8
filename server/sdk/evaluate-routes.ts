/**
 * `POST /sdk/v1/evaluate`: server-side evaluation with the shared core, for clients that do not evaluate locally.
 * Body `{ context, flags?: [keys] }` → `{ environment, version, flags: { <key>: { value, variant?, reason } } }`.
 * Without `flags`, every flag of the environment is evaluated.
 */
import type { FastifyPluginAsync } from 'fastify';
import { evaluate, evaluateFlag, type EvaluationContext, type EvaluationDetail } from '@aviary/sdk/core';
import { problem, validationError, type ProblemIssue } from '../errors.js';
import { CompiledEnvironmentCache } from './compiled-cache.js';
import { requestBody } from '../openapi/validation.js';

const MAX_FLAGS = 1000;

function checkContext(ctx: unknown, issues: ProblemIssue[]): ctx is EvaluationContext {
  if (typeof ctx !== 'object' || ctx === null || Array.isArray(ctx)) {
    issues.push({ path: '/context', message: 'is required and must be an object' });
    return false;
  }
  for (const [k, v] of Object.entries(ctx)) {
    const t = typeof v;
    if (t === 'string' || t === 'number' || t === 'boolean') continue;
    if (Array.isArray(v) && v.every((e) => ['string', 'number', 'boolean'].includes(typeof e))) continue;
    issues.push({ path: `/context/${k.replaceAll('~', '~0').replaceAll('/', '~1')}`, message: 'must be a string, number, boolean, or an array of those' });
  }
  if ('key' in ctx && typeof (ctx as Record<string, unknown>).key !== 'string') issues.push({ path: '/context/key', message: 'must be a string' });
  return true;
}

export const evaluateRoutes: FastifyPluginAsync = async (app) => {
  const cache = new CompiledEnvironmentCache(app.snapshots, app.changeFeed);
  app.addHook('onClose', async () => cache.close());

  app.post('/evaluate', { schema: { body: requestBody('sdkEvaluate') } }, async (request) => {
    const body = request.body;
    const issues: ProblemIssue[] = [];
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw validationError([{ path: '', message: 'the body must be a JSON object' }]);
    const { context, flags: keys, ...rest } = body as Record<string, unknown>;
    for (const k of Object.keys(rest)) issues.push({ path: `/${k}`, message: 'is not a known property' });
    checkContext(context, issues);
    if (keys !== undefined) {
      if (!Array.isArray(keys) || keys.length > MAX_FLAGS) issues.push({ path: '/flags', message: `must be an array of at most ${MAX_FLAGS} flag keys` });
      else keys.forEach((k, i) => typeof k !== 'string' && issues.push({ path: `/flags/${i}`, message: 'must be a string' }));
    }
    if (issues.length) throw validationError(issues);
    const { environment } = request.sdk!;
    const env = cache.get(environment);
    if (!env) throw problem('not-found', `Environment "${environment}" no longer exists.`);
    const ctx = context as EvaluationContext;
    const out: Record<string, EvaluationDetail> = {};
    if (keys === undefined) {
      for (const [key, flag] of env.flags) out[key] = evaluateFlag(flag, ctx, null, true);
    } else {
      for (const key of keys as string[]) {
        const flag = env.flags.get(key);
        out[key] = flag ? evaluateFlag(flag, ctx, null, true) : evaluate(env, key, ctx, null);
      }
    }
    return { environment, version: env.version, flags: out };
  });
};
