/**
 * Metrics routes: `POST /sdk/v1/metrics` (SDK scope: the report counts for the SDK key's environment) and
 * `GET /api/v1/flags/{key}/environments/{env}/metrics?from=&to=&step=` (admin scope, CONTRACT §5).
 */
import { Transform } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { MetricsReport } from '@aviary/sdk/protocol';
import { problem, validationError } from '../errors.js';
import type { RouteOf } from '../openapi/route-types.js';
import { parseTimeParameter } from '../openapi/time.js';
import { routeSchema } from '../openapi/validation.js';
import type { QuotaExceeded } from './key-quotas.js';
import { IngestKeyBusy, IngestUnavailable } from './metrics-ingester.js';
import { reportProblems, screenReport } from './report-validation.js';

const MINUTE = 60_000;
const MAX_WINDOW_MS = 90 * 86_400_000;
const MAX_POINTS = 1_440;

/**
 * `POST /metrics` under the SDK prefix. Answers 200 `{ accepted, duplicate, dropped? }` only after the report is
 * committed. Per SDK key (CONTRACT §16): the request's bytes and the report's rows are taken from the key's quotas
 * (429 + Retry-After, which the SDK retries), rows it may not report are dropped and named (`dropped`), and a report
 * with nothing countable left is refused (400, which the SDK treats as final).
 */
export async function metricsIngestRoutes(app: FastifyInstance): Promise<void> {
  const { quotas, catalog, instruments } = app.metrics;
  const overQuota = (reply: FastifyReply, over: QuotaExceeded, what: string) => {
    reply.header('retry-after', String(over.retryAfterSeconds));
    return problem(
      'too-many-requests',
      `This SDK key sent more than its ${what} allowance (${over.allowance} per minute); retry in ${over.retryAfterSeconds} s.`,
      {
        extensions: { limit: over.limit, allowance: over.allowance },
      },
    );
  };
  app.post<RouteOf<'sdkMetrics'>>(
    '/metrics',
    {
      // A full SDK report (5,000 rows with histograms) is larger than fastify's 1 MiB default.
      bodyLimit: 16 * 1024 * 1024,
      schema: routeSchema('sdkMetrics'),
      // The key pays for the bytes before they are parsed: its declared length, or (chunked) as they stream in.
      preParsing: (request, reply, payload, done) => {
        const tokenId = request.sdk?.tokenId;
        if (!tokenId) return done(null, payload);
        const declared = Number(request.headers['content-length']);
        if (Number.isFinite(declared) && declared >= 0) {
          const over = quotas.take(tokenId, 'bytes', declared);
          if (over) {
            instruments.reports.inc({ result: 'refused' });
            return done(overQuota(reply, over, 'bytes'));
          }
          return done(null, payload);
        }
        let seen = 0;
        const counted = new Transform({
          transform(chunk: Buffer, _encoding, next) {
            seen += chunk.length;
            next(null, chunk);
          },
          flush(next) {
            quotas.take(tokenId, 'bytes', seen);
            next();
          },
        });
        done(null, payload.pipe(counted));
      },
      // The key pays for the rows it sent, countable or not, before they are validated.
      preValidation: (request, reply, done) => {
        const stats = (request.body as { stats?: unknown } | null)?.stats;
        const over = request.sdk ? quotas.take(request.sdk.tokenId, 'rows', Array.isArray(stats) ? stats.length : 0) : null;
        if (!over) return done();
        instruments.reports.inc({ result: 'refused' });
        done(overQuota(reply, over, 'stats rows'));
      },
    },
    async (request, reply) => {
      const sdk = request.sdk;
      if (!sdk) throw problem('unauthorized', 'An SDK key is required.');
      // The schema (routeSchema above) has checked every field; what is left is what it cannot say.
      const report = request.body as MetricsReport;
      const issues = reportProblems(report);
      if (issues.length > 0) {
        instruments.reports.inc({ result: 'invalid' });
        throw validationError(issues);
      }
      const screened = screenReport(report, catalog.get(sdk.environment), app.now(), app.metrics.reportLimits, sdk.clientSide);
      for (const [reason, n] of Object.entries(screened.byReason)) instruments.droppedRows.inc({ reason }, n);
      const dropped =
        screened.dropped > 0
          ? { rows: screened.dropped, byLimit: screened.byReason, errors: screened.issues.map(({ path, message }) => ({ path, message })) }
          : undefined;
      if (screened.kept.length === 0 && screened.dropped > 0) {
        instruments.reports.inc({ result: 'invalid' });
        const first = screened.issues[0]!;
        throw problem('validation', `No row of this report can be counted (${screened.dropped} dropped); first: ${first.path}: ${first.message}`, {
          errors: dropped!.errors,
          extensions: { limit: first.limit, byLimit: screened.byReason },
        });
      }
      try {
        const receipt = await app.metrics.ingester.submit(sdk.environment, screened.dropped > 0 ? { ...report, stats: screened.kept } : report, {
          tokenId: sdk.tokenId,
          clientSide: sdk.clientSide,
        });
        return dropped ? { ...receipt, dropped } : { ...receipt };
      } catch (err) {
        if (err instanceof IngestKeyBusy) {
          reply.header('retry-after', '1');
          throw problem('too-many-requests', err.message, { extensions: { limit: err.limit, allowance: err.allowance } });
        }
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
  app.get<RouteOf<'getFlagMetrics'>>('/flags/:key/environments/:env/metrics', { schema: routeSchema('getFlagMetrics') }, async (request) => {
    const { key, env } = request.params;
    if (!(await app.store.get('SELECT 1 AS one FROM environments WHERE key = ?', [env]))) throw problem('not-found', `No environment "${env}".`);
    if (!(await app.store.get('SELECT 1 AS one FROM flags WHERE key = ?', [key]))) throw problem('not-found', `No flag "${key}".`);
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
  });
}
