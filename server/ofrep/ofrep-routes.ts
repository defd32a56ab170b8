/**
 * OFREP, the OpenFeature Remote Evaluation Protocol (https://github.com/open-feature/protocol), with SDK-key auth:
 *   POST /ofrep/v1/evaluate/flags/{key}   one flag → 200 { key, value, reason, variant, metadata }
 *                                          | 404 { key, errorCode: FLAG_NOT_FOUND } | 400 { key, errorCode, errorDetails }
 *   POST /ofrep/v1/evaluate/flags          every flag → 200 { flags: [...], eventStreams: [...] } with an ETag, 304 on If-None-Match
 *   GET  /ofrep/v1/events?ticket=…         change events (SSE) for @openfeature/ofrep-web-provider (./ofrep-events.ts)
 * so the published OFREP providers work against Aviary unchanged. Evaluation is the shared core's; the flag's own
 * kind is served (OFREP providers check the type on their side and report TYPE_MISMATCH).
 */
import type { FastifyError, FastifyPluginAsync, FastifyReply } from 'fastify';
import { createHash } from 'node:crypto';
import { evaluateFlag, type EvaluationContext, type EvaluationDetail, type JsonValue } from '@aviary/sdk/core';
import { sdkAuthHook } from '../auth/hooks.js';
import { problemDocument, problemErrorHandler, sendProblem } from '../errors.js';
import { CONTEXT_LIMITS, contextBudgetProblem } from '../limits/context-budget.js';
import { CompiledEnvironmentCache } from '../sdk-api/compiled-cache.js';
import { sdkCors } from '../sdk-api/cors.js';
import { eventStreamsFor, ofrepEventsRoutes } from './ofrep-events.js';

type OfrepErrorCode = 'PARSE_ERROR' | 'TARGETING_KEY_MISSING' | 'INVALID_CONTEXT' | 'GENERAL' | 'FLAG_NOT_FOUND';

/** OpenFeature reasons for Aviary's (the same mapping as the SDK's OpenFeature provider). */
export function ofrepReason(d: EvaluationDetail): string {
  const r = d.reason;
  switch (r.kind) {
    case 'OFF':
      return 'DISABLED';
    case 'TARGET_MATCH':
      return 'TARGETING_MATCH';
    case 'RULE_MATCH':
      return r.inRollout ? 'SPLIT' : 'TARGETING_MATCH';
    case 'FALLTHROUGH':
      return r.inRollout ? 'SPLIT' : 'DEFAULT';
    case 'PREREQUISITE_FAILED':
      return 'PREREQUISITE_FAILED';
    default:
      return 'ERROR';
  }
}

/**
 * An OFREP request's context → an Aviary context. `targetingKey` becomes `key`. Values must be what Aviary
 * conditions can test (strings, numbers, booleans, arrays of those); anything else is an INVALID_CONTEXT naming
 * the attribute, rather than being silently ignored. A context over the evaluation budget (server/limits/
 * context-budget.ts, the same as `POST /sdk/v1/evaluate`'s) is an INVALID_CONTEXT naming the limit.
 */
export function toContext(body: unknown): { ok: true; context: EvaluationContext } | { ok: false; code: OfrepErrorCode; details: string } {
  if (body === undefined || body === null) return { ok: true, context: {} };
  if (typeof body !== 'object' || Array.isArray(body)) return { ok: false, code: 'PARSE_ERROR', details: 'the body must be a JSON object' };
  const raw = (body as { context?: unknown }).context;
  if (raw === undefined) return { ok: true, context: {} };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return { ok: false, code: 'INVALID_CONTEXT', details: '/context: must be an object' };
  const over = contextBudgetProblem(raw);
  if (over) return { ok: false, code: 'INVALID_CONTEXT', details: `/context${over.path}: ${over.message}` };
  const context: EvaluationContext = {};
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === 'targetingKey') {
      if (typeof v !== 'string') return { ok: false, code: 'INVALID_CONTEXT', details: '/context/targetingKey: must be a string' };
      context.key = v;
      continue;
    }
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') context[name] = v;
    else if (Array.isArray(v) && v.every((e) => typeof e === 'string' || typeof e === 'number' || typeof e === 'boolean'))
      context[name] = v as string[];
    else
      return {
        ok: false,
        code: 'INVALID_CONTEXT',
        details: `/context/${name.replaceAll('~', '~0').replaceAll('/', '~1')}: must be a string, number, boolean, or an array of those`,
      };
  }
  return { ok: true, context };
}

function success(key: string, d: EvaluationDetail, version: number) {
  const metadata: Record<string, string | number | boolean> = { aviaryReason: d.reason.kind, environmentVersion: version };
  if (d.reason.ruleId !== undefined) metadata.ruleId = d.reason.ruleId;
  if (d.reason.bucket !== undefined) metadata.bucket = d.reason.bucket;
  if (d.reason.bucketByMissing) metadata.bucketByMissing = true;
  if (d.reason.prerequisiteKey !== undefined) metadata.prerequisiteKey = d.reason.prerequisiteKey;
  return { key, value: d.value as JsonValue, reason: ofrepReason(d), ...(d.variant !== undefined ? { variant: d.variant } : {}), metadata };
}

function failure(reply: FastifyReply, status: number, body: object) {
  return reply.code(status).header('content-type', 'application/json; charset=utf-8').send(body);
}

/** A strong ETag per (environment version, context): the same context at the same version evaluates the same. */
function bulkETag(environment: string, version: number, context: EvaluationContext): string {
  const keys = Object.keys(context).sort();
  const canonical = JSON.stringify(keys.map((k) => [k, context[k]]));
  return `"${environment}-${version}-${createHash('sha1').update(canonical).digest('base64url').slice(0, 16)}"`;
}

/** How long a bulk evaluation waits for this replica to reach the version a change event named. */
const CATCH_UP_WAIT_MS = 2_000;

/** The version in a `flagConfigEtag` (`"<environment>-<version>"`, server/ofrep/ofrep-events.ts) of this environment, or null. */
function configVersion(etag: unknown, environment: string): number | null {
  if (typeof etag !== 'string' || etag.length > 300) return null;
  const prefix = `"${environment}-`;
  if (!etag.startsWith(prefix) || !etag.endsWith('"')) return null;
  const digits = etag.slice(prefix.length, -1);
  return /^\d{1,15}$/.test(digits) ? Number(digits) : null;
}

function matches(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return (Array.isArray(header) ? header.join(',') : header)
    .split(',')
    .map((s) => s.trim().replace(/^W\//, ''))
    .some((t) => t === etag || t === '*');
}

/**
 * The OFREP routes: CORS for the whole prefix, then two contexts: evaluation (SDK key in `Authorization`, evaluation
 * time budget) and change events (a ticket in the URL: EventSource sends no headers; server/ofrep/ofrep-events.ts).
 */
export const ofrepRoutes: FastifyPluginAsync = async (app) => {
  // Before any auth hook: a browser's preflight carries no key (server/sdk-api/cors.ts).
  await sdkCors(app);
  await app.register(evaluationRoutes);
  await app.register(ofrepEventsRoutes);
};

const evaluationRoutes: FastifyPluginAsync = async (app) => {
  const cache = new CompiledEnvironmentCache(app.snapshots, app.changeFeed);
  app.addHook('onClose', async () => cache.close());
  app.addHook('onRequest', sdkAuthHook);

  // The largest context within the evaluation budget (100 arrays of 100 numbers) is under 256 KiB of JSON; a larger
  // body is refused (413) before it is read in full.
  const bodyLimit = 256 * 1024;
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.code !== 'FST_ERR_CTP_BODY_TOO_LARGE') return problemErrorHandler(error, request, reply);
    const detail = `The request body is larger than ${bodyLimit} bytes, the OFREP body limit (a context within the evaluation budget, ${CONTEXT_LIMITS.totalStringBytes} bytes of strings, is far smaller).`;
    return sendProblem(
      reply,
      problemDocument('payload-too-large', detail, {
        instance: request.url.split('?')[0]!,
        extensions: { limit: 'bodyBytes', allowance: bodyLimit },
      }),
    );
  });
  // Each key's share of the event loop for evaluation (server/limits/evaluation-time.ts), shared with /sdk/v1/evaluate.
  const time = app.evaluationTime;
  // A key out of time is refused before its body is parsed: a flood of refusals costs as little as possible.
  app.addHook('onRequest', (request, reply, done) => {
    const over = request.sdk ? time.admit(request.sdk.tokenId) : null;
    if (!over) return done();
    reply.header('retry-after', String(over.retryAfterSeconds));
    const detail = `This SDK key used its ${time.limits.msPerSecond} ms per second of server-side evaluation; retry in ${over.retryAfterSeconds} s.`;
    void sendProblem(
      reply,
      problemDocument('too-many-requests', detail, {
        instance: request.url.split('?')[0]!,
        extensions: { limit: 'evaluation-ms-per-second', allowance: time.limits.msPerSecond },
      }),
    );
  });

  app.post<{ Params: { key: string } }>('/evaluate/flags/:key', { bodyLimit }, async (request, reply) => {
    const { key } = request.params;
    const parsed = toContext(request.body);
    if (!parsed.ok) return failure(reply, 400, { key, errorCode: parsed.code, errorDetails: parsed.details });
    const env = cache.get(request.sdk!.environment);
    const flag = env?.flags.get(key);
    if (!env || !flag) return failure(reply, 404, { key, errorCode: 'FLAG_NOT_FOUND', errorDetails: `No flag "${key}" in this environment.` });
    const d = time.run(request.sdk!.tokenId, () => evaluateFlag<JsonValue>(flag, parsed.context, null, true));
    if (d.reason.kind === 'ERROR') {
      return failure(reply, 400, {
        key,
        errorCode: d.errorCode === 'MALFORMED_FLAG' ? 'PARSE_ERROR' : 'GENERAL',
        errorDetails: d.errorCode ?? 'evaluation failed',
      });
    }
    return reply.header('cache-control', 'no-store').send(success(key, d, env.version));
  });

  app.post('/evaluate/flags', { bodyLimit }, async (request, reply) => {
    const parsed = toContext(request.body);
    if (!parsed.ok) return failure(reply, 400, { errorCode: parsed.code, errorDetails: parsed.details });
    const environment = request.sdk!.environment;
    // A change event from another replica names a version this one may not have applied yet: catch up first (at most
    // 2 s), or the provider would get a 304 for the version before the change and miss it until the next event.
    const wanted = configVersion((request.query as { flagConfigEtag?: unknown }).flagConfigEtag, environment);
    if (wanted !== null && app.hasDecorator('follower') && app.store.dialect === 'postgres' && wanted > (app.snapshots.version(environment) ?? 0)) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([app.follower.catchUp(environment), new Promise((r) => (timer = setTimeout(r, CATCH_UP_WAIT_MS)))]);
      clearTimeout(timer);
    }
    const env = cache.get(environment);
    if (!env) return failure(reply, 400, { errorCode: 'GENERAL', errorDetails: `Environment "${environment}" no longer exists.` });
    const etag = bulkETag(environment, env.version, parsed.context);
    if (matches(request.headers['if-none-match'], etag)) return reply.code(304).header('etag', etag).send();
    const flags: object[] = [];
    time.run(request.sdk!.tokenId, () => {
      for (const [key, flag] of env.flags) {
        const d = evaluateFlag<JsonValue>(flag, parsed.context, null, true);
        if (d.reason.kind === 'ERROR')
          flags.push({
            key,
            errorCode: d.errorCode === 'MALFORMED_FLAG' ? 'PARSE_ERROR' : 'GENERAL',
            errorDetails: d.errorCode ?? 'evaluation failed',
          });
        else flags.push(success(key, d, env.version));
      }
    });
    // Where the provider listens for changes (OFREP ADR-0008): it re-fetches on each event instead of polling.
    const eventStreams = eventStreamsFor(app, app.prefix, request.sdk!.tokenId);
    return reply
      .header('etag', etag)
      .header('cache-control', 'no-cache')
      .send(eventStreams ? { flags, eventStreams } : { flags });
  });
};
