/**
 * `POST /sdk/v1/metrics/batch` served by a relay, for relays chained below it (docs/relay.md, "Chained relays").
 *
 * The downstream relay's token is checked locally, like SDK keys, against the relay-token hashes upstream streams to
 * this relay; every report's environment must be covered by it and by this relay, and every attributed key must be an
 * SDK key of that environment known here (from the same stream). The reports are checked as
 * upstream would (shape, bounds) and journalled as one durable unit (`MetricsForwarder.acceptMany`) before the answer;
 * this relay forwards them in its own batches under its own key. A downstream replay is journalled again and counted
 * once upstream by each report's own (key, sdkId, seq) dedupe, so the answer is always `replay: false` here.
 */
import type { FastifyInstance } from 'fastify';
import type { MetricsReport } from '@aviary/sdk/protocol';
import { bearerSecret } from '../auth/authenticate.js';
import { authFailureLimitHook } from '../auth/hooks.js';
import { problem, validationError } from '../errors.js';
import { checkRelayBatch, RELAY_BATCH_LIMITS } from '../metrics/relay-batch-routes.js';
import { reportProblems } from '../metrics/report-validation.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';
import { ForwarderFull, type MetricsForwarder } from './metrics-forwarder.js';

export interface RelayBatchRouteOptions {
  forwarder: MetricsForwarder;
  /** The environments this relay serves (null: all). */
  environments: () => readonly string[] | null;
  /** A downstream relay token's scope, from the key hashes upstream streams here (null: no such relay token). */
  relayScope(secret: string): { tokenId: string; environments: readonly string[] | null } | null;
  /** The ids of the active SDK keys of an environment, from the same hashes. */
  sdkKeyIds(environment: string): ReadonlySet<string>;
}

export function relayBatchRoute(options: RelayBatchRouteOptions) {
  return async (app: FastifyInstance): Promise<void> => {
    app.addHook('onRequest', authFailureLimitHook);
    app.post<RouteOf<'relayMetricsBatch'>>(
      '/metrics/batch',
      { bodyLimit: RELAY_BATCH_LIMITS.bytes, schema: routeSchema('relayMetricsBatch') },
      async (request, reply) => {
        const secret = bearerSecret(request);
        if (!secret) throw problem('unauthorized', 'Send a relay token as "Authorization: Bearer <token>".');
        const relay = options.relayScope(secret);
        if (!relay) throw problem('unauthorized', 'Unknown relay token.');
        const entries = request.body.reports;
        checkRelayBatch(request.headers['idempotency-key'], entries);
        const mine = options.environments();
        const ids = new Map<string, ReadonlySet<string>>();
        const keyIn = (env: string, id: string) => {
          let set = ids.get(env);
          if (!set) ids.set(env, (set = options.sdkKeyIds(env)));
          return set.has(id);
        };
        const issues: Array<{ path: string; message: string }> = [];
        entries.forEach((e, i) => {
          if ((relay.environments && !relay.environments.includes(e.environment)) || (mine && !mine.includes(e.environment)))
            issues.push({ path: `/reports/${i}/environment`, message: 'not covered by this relay token' });
          else if (!keyIn(e.environment, e.key)) issues.push({ path: `/reports/${i}/key`, message: `no SDK key "${e.key}" in "${e.environment}"` });
        });
        if (issues.length > 0)
          throw problem('forbidden', `A report cannot be forwarded; first: ${issues[0]!.path}: ${issues[0]!.message}`, {
            errors: issues.slice(0, 20),
          });
        const shape = entries.flatMap((e, i) =>
          reportProblems(e.report as MetricsReport).map((p) => ({ ...p, path: `/reports/${i}/report${p.path}` })),
        );
        if (shape.length > 0) throw validationError(shape.slice(0, 20));
        try {
          await options.forwarder.acceptMany(entries.map((e) => ({ key: e.key, environment: e.environment, report: e.report as MetricsReport })));
        } catch (err) {
          reply.header('retry-after', '1');
          if (err instanceof ForwarderFull) throw problem('unavailable', err.message);
          throw problem('unavailable', 'The batch could not be journalled; retry it with the same Idempotency-Key.');
        }
        return { accepted: true, replay: false, reports: entries.length };
      },
    );
  };
}
