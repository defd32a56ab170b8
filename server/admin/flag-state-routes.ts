/**
 * Per-environment flag state, kill switches and the panic button:
 *   GET|PUT /api/v1/flags/{key}/environments/{env}            (ETag "v<version>", If-Match honoured on PUT)
 *   POST    /api/v1/flags/{key}/environments/{env}/kill|revive  (idempotent, no If-Match, optional { reason })
 *   POST    /api/v1/environments/{env}/kill-all                 ({ reason?, except?: [flagKeys] })
 *   POST    /api/v1/environments/{env}/revive-all               ({ reason? })
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { problem, validationError, type ProblemIssue } from '../errors.js';
import { parseIfMatch, stateETag, type StateWriteResult } from '../storage/flag-store.js';
import { checkKnown, KEY_PATTERN, optionalBodyObject, readReason, requireBodyObject } from './body.js';
import { queryInt, type Query } from './query.js';
import { requestBody } from '../openapi/validation.js';

type Params = { key: string; env: string };

/**
 * A form body as the switch routes' JSON body: each field once (the first value), `except` as a list (repeated, or
 * comma-separated). Field names become own properties whatever they are (`__proto__` included), so unknown ones
 * reach the schema and are refused there.
 */
function parseFormBody(_request: unknown, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void {
  const params = new URLSearchParams(String(body));
  const out: Record<string, unknown> = {};
  for (const name of new Set(params.keys())) {
    const value = name === 'except' ? params.getAll(name).flatMap((v) => v.split(',')).filter((v) => v !== '') : params.get(name);
    Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
  }
  done(null, out);
}

export const flagStateRoutes: FastifyPluginAsync = async (app) => {
  const requireEnv = (env: string) => {
    if (!app.stores.environments.get(env)) throw problem('not-found', `No environment "${env}".`);
  };

  /** Kill/revive answer: the state, whether it changed, the environment version that carries it, and delivery. */
  const switchReply = async (reply: FastifyReply, env: string, result: StateWriteResult, waitMs: number | undefined) => {
    const body: Record<string, unknown> = { ...result.state, changed: result.changed, environmentVersion: result.environmentVersion };
    // Delivery receipts (stream hub): always the receipt as of now (with its `url` to follow); ?waitMs= waits up to
    // that long for every connected SDK to apply the change, so the switch itself never waits unless asked.
    if (app.receipts) body.delivery = await app.receipts.waitFor(env, result.environmentVersion, waitMs ?? 0);
    return reply.header('etag', `"${stateETag(result.state.version)}"`).send(body);
  };

  app.get<{ Params: Params }>('/flags/:key/environments/:env', async (request, reply) => {
    const { key, env } = request.params;
    if (!app.stores.flags.get(key)) throw problem('not-found', `No flag "${key}".`);
    requireEnv(env);
    const state = app.stores.flags.getState(env, key);
    if (!state) throw problem('not-found', `Flag "${key}" has no state in "${env}".`);
    return reply.header('etag', `"${stateETag(state.version)}"`).send(state);
  });

  app.put<{ Params: Params }>('/flags/:key/environments/:env', { schema: { body: requestBody('putFlagState') } }, async (request, reply) => {
    const { key, env } = request.params;
    const body = requireBodyObject(request.body);
    requireEnv(env);
    const issues: ProblemIssue[] = [];
    const reason = readReason(body, issues);
    if (issues.length) throw validationError(issues);
    const { reason: _r, ...state } = body;
    const result = app.stores.flags.putState(request.actor!, env, key, state, parseIfMatch(request.headers['if-match']), reason);
    return reply.header('etag', `"${stateETag(result.state.version)}"`).send({ ...result.state, environmentVersion: result.environmentVersion });
  });

  const readSwitchBody = (raw: unknown) => {
    const body = optionalBodyObject(raw);
    const issues: ProblemIssue[] = [];
    checkKnown(body, ['reason'], issues);
    const reason = readReason(body, issues);
    if (issues.length) throw validationError(issues);
    return reason;
  };

  // The kill switches also take a form body (`curl -X POST .../kill -d reason=incident-42`): what an on-call engineer
  // types in an incident should work the first time. Other routes stay JSON-only (415).
  await app.register(async (switches) => {
    switches.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, parseFormBody);

    switches.post<{ Params: Params }>('/flags/:key/environments/:env/kill', { schema: { body: requestBody('killFlag') } }, async (request, reply) => {
      const { key, env } = request.params;
      const issues: ProblemIssue[] = [];
      const waitMs = queryInt(request.query as Query, 'waitMs', issues, 0, 30_000);
      if (issues.length) throw validationError(issues);
      const result = app.stores.flags.kill(request.actor!, env, key, readSwitchBody(request.body));
      // On stable storage now, on this thread: under SDK load an fsync on the thread pool is followed by a wait for the
      // event loop to come back round, and that wait (not the disk) dominated the kill's latency (bench:server).
      if (result.changed) app.writer.durableSync();
      return switchReply(reply, env, result, waitMs);
    });

    switches.post<{ Params: Params }>('/flags/:key/environments/:env/revive', { schema: { body: requestBody('reviveFlag') } }, async (request, reply) => {
      const { key, env } = request.params;
      const issues: ProblemIssue[] = [];
      const waitMs = queryInt(request.query as Query, 'waitMs', issues, 0, 30_000);
      if (issues.length) throw validationError(issues);
      const result = app.stores.flags.revive(request.actor!, env, key, readSwitchBody(request.body));
      if (result.changed) app.writer.durableSync();
      return switchReply(reply, env, result, waitMs);
    });

    switches.post<{ Params: { env: string } }>('/environments/:env/kill-all', { schema: { body: requestBody('killAll') } }, async (request) => {
      const { env } = request.params;
      const body = optionalBodyObject(request.body);
      const issues: ProblemIssue[] = [];
      checkKnown(body, ['reason', 'except'], issues);
      const reason = readReason(body, issues);
      let except: string[] = [];
      if (body.except !== undefined) {
        if (!Array.isArray(body.except)) issues.push({ path: '/except', message: 'must be an array of flag keys' });
        else {
          body.except.forEach((k, i) => {
            if (typeof k !== 'string' || !KEY_PATTERN.test(k)) issues.push({ path: `/except/${i}`, message: 'must be a flag key' });
            else if (!app.stores.flags.get(k)) issues.push({ path: `/except/${i}`, message: `no flag "${k}"` });
          });
          except = body.except.filter((k): k is string => typeof k === 'string');
        }
      }
      if (issues.length) throw validationError(issues);
      requireEnv(env);
      const result = app.stores.flags.killAll(request.actor!, env, { reason, except });
      // The panic button is as urgent as one kill switch: fsync now rather than after the event loop comes back round.
      app.writer.durableSync();
      return result;
    });

    switches.post<{ Params: { env: string } }>('/environments/:env/revive-all', { schema: { body: requestBody('reviveAll') } }, async (request) => {
      const { env } = request.params;
      const body = optionalBodyObject(request.body);
      const issues: ProblemIssue[] = [];
      checkKnown(body, ['reason'], issues);
      const reason = readReason(body, issues);
      if (issues.length) throw validationError(issues);
      requireEnv(env);
      const result = app.stores.flags.reviveAll(request.actor!, env, reason);
      app.writer.durableSync();
      return result;
    });
  });
};

