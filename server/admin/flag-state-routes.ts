/**
 * Per-environment flag state, kill switches and the panic button:
 *   GET|PUT /api/v1/flags/{key}/environments/{env}            (ETag "v<version>", If-Match honoured on PUT; GET ?at= the past
 *                                                              state; in an environment that requires approval a PUT
 *                                                              answers 202 with a change request: change-request-store.ts)
 *   POST    /api/v1/flags/{key}/environments/{env}/kill|revive  (idempotent, no If-Match, optional { reason })
 *   POST    /api/v1/environments/{env}/kill-all                 ({ reason?, except?: [flagKeys] })
 *   POST    /api/v1/environments/{env}/revive-all               ({ reason? })
 */
import type { FastifyPluginAsync } from 'fastify';
import type { components } from '../../openapi/types.js';
import { problem, validationError, type ProblemIssue } from '../errors.js';
import type { FlagStateResource, StateWriteResult } from '../storage/flag-state-store.js';
import { parseTimeParameter } from '../openapi/time.js';
import { ifMatch, stateETag } from './preconditions.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';
import { lifecycleOfState } from '../lifecycle/lifecycle-routes.js';

type KillResult = components['schemas']['KillResult'];
type DeliveryReceipt = components['schemas']['DeliveryReceipt'];

/**
 * A form body as the switch routes' JSON body: each field once (the first value), `except` as a list (repeated, or
 * comma-separated). Field names become own properties whatever they are (`__proto__` included), so unknown ones
 * reach the schema and are refused there.
 */
function parseFormBody(_request: unknown, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void {
  const params = new URLSearchParams(String(body));
  const out: Record<string, unknown> = {};
  for (const name of new Set(params.keys())) {
    const value =
      name === 'except'
        ? params
            .getAll(name)
            .flatMap((v) => v.split(','))
            .filter((v) => v !== '')
        : params.get(name);
    Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
  }
  done(null, out);
}

export const flagStateRoutes: FastifyPluginAsync = async (app) => {
  // This replica's live state answers at once; the database only for an environment it has not heard of yet.
  const requireEnv = async (env: string) => {
    if (app.snapshots.version(env) === null && !(await app.stores.environments.get(env))) throw problem('not-found', `No environment "${env}".`);
  };

  /** The panic button's answer, with a delivery receipt for its version when `waitMs` asks for one. */
  const withDelivery = async <T extends { environmentVersion: number }>(env: string, result: T, waitMs: number | undefined) => {
    if (waitMs === undefined || !app.receipts) return result;
    return { ...result, delivery: (await app.receipts.waitFor(env, result.environmentVersion, waitMs)) as DeliveryReceipt };
  };

  /** Kill/revive answer: the state, whether it changed, the environment version that carries it, and delivery. */
  const switchResult = async (env: string, result: StateWriteResult, waitMs: number | undefined): Promise<KillResult> => {
    const body: KillResult = { ...result.state, changed: result.changed, environmentVersion: result.environmentVersion };
    // Delivery receipts (stream hub): always the receipt as of now (with its `url` to follow); ?waitMs= waits up to
    // that long for every connected SDK to apply the change, so the switch itself never waits unless asked.
    if (app.receipts) body.delivery = (await app.receipts.waitFor(env, result.environmentVersion, waitMs ?? 0)) as DeliveryReceipt;
    return body;
  };

  app.get<RouteOf<'getFlagState'>>('/flags/:key/environments/:env', { schema: routeSchema('getFlagState') }, async (request, reply) => {
    const { key, env } = request.params;
    const flag = await app.stores.flags.get(key);
    if (!flag) throw problem('not-found', `No flag "${key}".`);
    await requireEnv(env);
    if (request.query.at !== undefined) {
      // The past state, from the history (history-store.ts); no ETag: it is not a version a write could be based on.
      const past = await app.stores.history.stateAt(env, key, parseTimeParameter(request.query.at));
      if (!past) throw problem('not-found', `Flag "${key}" had no state in "${env}" at ${request.query.at}.`);
      const body: FlagStateResource = {
        ...past.entry.state,
        flag: key,
        environment: env,
        killedAt: past.killedAt,
        killReason: past.killReason,
        panicked: past.panicked,
        updatedAt: past.entry.at,
      };
      return reply.code(200).send(body);
    }
    const state = await app.stores.states.getState(env, key);
    if (!state) throw problem('not-found', `Flag "${key}" has no state in "${env}".`);
    return reply
      .header('etag', `"${stateETag(state.version)}"`)
      .code(200)
      .send({ ...state, lifecycle: await lifecycleOfState(app, flag, env) });
  });

  app.put<RouteOf<'putFlagState'>>('/flags/:key/environments/:env', { schema: routeSchema('putFlagState') }, async (request, reply) => {
    const { key, env } = request.params;
    await requireEnv(env);
    const { reason = null, ...state } = request.body;
    const precondition = ifMatch(request.headers['if-match'], stateETag, `The state of "${key}" in "${env}"`);
    const outcome = await app.stores.changeRequests.putOrRequest(request.actor!, env, key, state, precondition, reason);
    if (outcome.request) return reply.header('location', `/api/v1/change-requests/${outcome.request.id}`).code(202).send(outcome.request);
    const result = outcome.applied;
    return reply
      .header('etag', `"${stateETag(result.state.version)}"`)
      .code(200)
      .send({ ...result.state, environmentVersion: result.environmentVersion });
  });

  // The kill switches also take a form body (`curl -X POST .../kill -d reason=incident-42`): what an on-call engineer
  // types in an incident should work the first time. Other routes stay JSON-only (415). Either way the body has
  // passed the spec's schema (known fields only, `reason` a string of at most 1000 characters) before a handler runs.
  await app.register(async (switches) => {
    switches.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, parseFormBody);

    switches.post<RouteOf<'killFlag'>>('/flags/:key/environments/:env/kill', { schema: routeSchema('killFlag') }, async (request, reply) => {
      const { key, env } = request.params;
      const result = await app.stores.states.kill(request.actor!, env, key, request.body?.reason ?? null);
      // On stable storage now, on this thread: under SDK load an fsync on the thread pool is followed by a wait for the
      // event loop to come back round, and that wait (not the disk) dominated the kill's latency (bench:server).
      if (result.changed) app.writer.durableSync();
      const body = await switchResult(env, result, request.query.waitMs);
      return reply
        .header('etag', `"${stateETag(result.state.version)}"`)
        .code(200)
        .send(body);
    });

    switches.post<RouteOf<'reviveFlag'>>('/flags/:key/environments/:env/revive', { schema: routeSchema('reviveFlag') }, async (request, reply) => {
      const { key, env } = request.params;
      const result = await app.stores.states.revive(request.actor!, env, key, request.body?.reason ?? null);
      if (result.changed) app.writer.durableSync();
      const body = await switchResult(env, result, request.query.waitMs);
      return reply
        .header('etag', `"${stateETag(result.state.version)}"`)
        .code(200)
        .send(body);
    });

    switches.post<RouteOf<'killAll'>>('/environments/:env/kill-all', { schema: routeSchema('killAll') }, async (request) => {
      const { env } = request.params;
      const except = request.body?.except ?? [];
      // Keys the schema let through (they match the key pattern) must also name flags: a typo must not leave a flag on.
      const issues: ProblemIssue[] = [];
      for (const [i, k] of except.entries()) {
        if (!(await app.stores.flags.get(k))) issues.push({ path: `/except/${i}`, message: `no flag "${k}"` });
      }
      if (issues.length) throw validationError(issues);
      await requireEnv(env);
      const result = await app.stores.states.killAll(request.actor!, env, { reason: request.body?.reason ?? null, except });
      // The panic button is as urgent as one kill switch: fsync now rather than after the event loop comes back round.
      app.writer.durableSync();
      return withDelivery(env, result, request.query.waitMs);
    });

    switches.post<RouteOf<'reviveAll'>>('/environments/:env/revive-all', { schema: routeSchema('reviveAll') }, async (request) => {
      const { env } = request.params;
      await requireEnv(env);
      const result = await app.stores.states.reviveAll(request.actor!, env, request.body?.reason ?? null);
      app.writer.durableSync();
      return withDelivery(env, result, request.query.waitMs);
    });
  });
};
