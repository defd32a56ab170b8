/**
 * Metrics routes: `POST /sdk/v1/metrics` (SDK scope: the report counts for the SDK key's environment) and
 * `GET /api/v1/flags/{key}/environments/{env}/metrics?from=&to=&step=` (admin scope, CONTRACT §5).
 */
import type { FastifyInstance } from 'fastify';
import { problem, validationError } from '../errors.js';
import type { RouteOf } from '../openapi/route-types.js';
import { parseTimeParameter } from '../openapi/time.js';
import { routeSchema } from '../openapi/validation.js';
import { IngestUnavailable } from './metrics-ingester.js';
import { validateMetricsReport } from './report-validation.js';

const MINUTE = 60_000;
const MAX_WINDOW_MS = 90 * 86_400_000;
const MAX_POINTS = 1_440;

/** `POST /metrics` under the SDK prefix. Answers 200 `{ accepted, duplicate }` only after the report is committed. */
export async function metricsIngestRoutes(app: FastifyInstance): Promise<void> {
  app.post<RouteOf<'sdkMetrics'>>(
    '/metrics',
    // A full SDK report (5,000 rows with histograms) is larger than fastify's 1 MiB default.
    { bodyLimit: 16 * 1024 * 1024, schema: routeSchema('sdkMetrics') },
    async (request, reply) => {
      const environment = request.sdk?.environment;
      if (!environment) throw problem('unauthorized', 'An SDK key is required.');
      const checked = validateMetricsReport(request.body);
      if (!checked.value) {
        app.metrics.instruments.reports.inc({ result: 'invalid' });
        throw validationError(checked.issues);
      }
      try {
        return { ...(await app.metrics.ingester.submit(environment, checked.value)) };
      } catch (err) {
        if (err instanceof IngestUnavailable) {
          reply.header('retry-after', '1');
          throw problem('unavailable', err.message);
        }
        request.log.error({ err }, 'metrics batch failed to commit');
        reply.header('retry-after', '1');
        throw problem('unavailable', 'The report could not be stored; retry it (it will be counted once).');
      }
    },
  );
}

/** `GET /flags/:key/environments/:env/metrics` under the admin prefix. */
export async function metricsAdminRoutes(app: FastifyInstance): Promise<void> {
  const flagExists = app.sqlite.prepare<[string], { one: number }>('SELECT 1 AS one FROM flags WHERE key = ?');
  const envExists = app.sqlite.prepare<[string], { one: number }>('SELECT 1 AS one FROM environments WHERE key = ?');
  app.get<RouteOf<'getFlagMetrics'>>(
    '/flags/:key/environments/:env/metrics',
    { schema: routeSchema('getFlagMetrics') },
    async (request) => {
      const { key, env } = request.params;
      if (!envExists.get(env)) throw problem('not-found', `No environment "${env}".`);
      if (!flagExists.get(key)) throw problem('not-found', `No flag "${key}".`);
      // The schema has checked each parameter's form (times as RFC 3339 or epoch ms, `step` a whole number of minutes
      // in seconds); what is left is how they combine.
      const q = request.query;
      const to = q.to !== undefined ? parseTimeParameter(q.to) : app.now();
      const from = q.from !== undefined ? parseTimeParameter(q.from) : to - 3_600_000;
      if (from >= to) throw validationError([{ path: '/query/from', message: 'must be before `to`' }]);
      if (to - from > MAX_WINDOW_MS) throw validationError([{ path: '/query/from', message: 'the window is at most 90 days' }]);
      // Per minute up to a day; coarser beyond, so a series never exceeds MAX_POINTS points.
      const stepMs = q.step !== undefined ? q.step * 1000 : Math.max(MINUTE, Math.ceil((to - from) / MAX_POINTS / MINUTE) * MINUTE);
      if ((to - from) / stepMs > MAX_POINTS * 10) throw validationError([{ path: '/query/step', message: 'too many points; use a larger step' }]);
      return app.metrics.store.query(env, key, from, to, stepMs);
    },
  );
}
