/**
 * `POST /sdk/v1/metrics/batch` (relay token): a relay forwards its SDKs' original metrics reports, each attributed to
 * the SDK key it came in with, exactly once (CONTRACT §5, §10, §16; docs/relay.md "Metrics exactly once").
 *
 * Checks, all before anything is counted (a refusal changes nothing): the relay token is active and of kind `relay`;
 * the batch is within its bounds (bytes, reports, rows: 413 naming the limit); every report's environment is covered
 * by the token (403); every attributed key exists, is an active SDK key and belongs to that environment (422); every
 * report passes the same shape checks as a direct one (400); each attributed key pays its own per-key quotas for its
 * reports' rows and bytes (429 + Retry-After naming the key; the relay retries the batch with the same key).
 *
 * Then each report is screened against its environment with its own key's side (client-side limits stay client-side)
 * and the batch is committed in ONE transaction with its `Idempotency-Key` in `relay_batches`
 * (`MetricsIngester.commitRelayBatch`): a replay of a committed key answers 200 `replay: true` and counts nothing.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { MetricsReport } from '@aviary/sdk/protocol';
import { bearerSecret } from '../auth/authenticate.js';
import { authFailureLimitHook } from '../auth/hooks.js';
import { problem, validationError, type AviaryError } from '../errors.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';
import { bool } from '../storage/port.js';
import { IngestUnavailable, type IngestItem } from './metrics-ingester.js';
import { reportProblems, screenReport } from './report-validation.js';

/** Bounds of one relay batch (docs/relay.md). */
export const RELAY_BATCH_LIMITS = {
  /** Request bytes. */
  bytes: 16 * 1024 * 1024,
  /** Reports (also the schema's `maxItems`). */
  reports: 2_000,
  /** Stats rows over all reports: one batch is one transaction, and a kill waits behind at most one. */
  rows: 20_000,
};

const BATCH_KEY = /^[A-Za-z0-9._:-]{1,200}$/;

/**
 * What every receiver of a relay batch (the server, and a relay for the relays below it) checks first: the
 * `Idempotency-Key` header's form and the stats rows over all reports. Answers the batch key; throws the problem.
 */
export function checkRelayBatch(idempotencyKey: unknown, reports: ReadonlyArray<{ report: { stats: readonly unknown[] } }>): string {
  if (typeof idempotencyKey !== 'string' || !BATCH_KEY.test(idempotencyKey))
    throw validationError([{ path: '/headers/idempotency-key', message: 'required: 1–200 characters of A–Z a–z 0–9 . _ : -' }]);
  let rows = 0;
  for (const e of reports) rows += e.report.stats.length;
  if (rows > RELAY_BATCH_LIMITS.rows)
    throw problem('payload-too-large', `A relay batch holds at most ${RELAY_BATCH_LIMITS.rows} stats rows (this one ${rows}); split it.`, {
      extensions: { limit: 'rows-per-batch', allowance: RELAY_BATCH_LIMITS.rows },
    });
  return idempotencyKey;
}

/** The relay a batch request comes from: its token id and the environments it covers (null: all). */
interface RelayPrincipal {
  tokenId: string;
  environments: string[] | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the relay batch route's auth hook. */
    relay?: RelayPrincipal;
  }
}

interface KeyRow {
  id: string;
  kind: string;
  environment: string | null;
  client_side: number | boolean;
  revoked_at: number | string | null;
  expires_at: number | string | null;
}

/** Requires a relay token; sets `request.relay`. */
async function relayAuth(request: FastifyRequest): Promise<void> {
  const app = request.server;
  const fail = (reason: 'missing' | 'invalid' | 'revoked' | 'wrong-kind', err: AviaryError) => {
    app.changeFeed.emit('auth.failure', { ip: request.ip, scope: 'sdk', reason });
    throw err;
  };
  const secret = bearerSecret(request);
  if (!secret) return fail('missing', problem('unauthorized', 'Send a relay token as "Authorization: Bearer <token>".'));
  const token = app.stores.tokens.authenticate(secret);
  if (!token) {
    const revoked = app.stores.tokens.isRevoked(secret);
    return fail(revoked ? 'revoked' : 'invalid', problem('unauthorized', revoked ? 'This token has been revoked.' : 'Unknown token.'));
  }
  if (token.kind !== 'relay') return fail('wrong-kind', problem('forbidden', 'Only a relay token may forward metrics batches.'));
  request.relay = { tokenId: token.id, environments: token.environments };
}

export async function relayBatchRoutes(app: FastifyInstance): Promise<void> {
  const { quotas, catalog, instruments } = app.metrics;
  app.addHook('onRequest', authFailureLimitHook);
  app.addHook('onRequest', relayAuth);
  // Acknowledged only once on stable storage, like a direct report.
  app.addHook('onSend', (_request, _reply, payload, done) => {
    app.writer.durable().then(() => done(null, payload), done);
  });
  const tooLarge = (limit: string, allowance: number, detail: string) => problem('payload-too-large', detail, { extensions: { limit, allowance } });
  app.post<RouteOf<'relayMetricsBatch'>>(
    '/metrics/batch',
    {
      bodyLimit: RELAY_BATCH_LIMITS.bytes,
      schema: routeSchema('relayMetricsBatch'),
      preParsing: (request, _reply, payload, done) => {
        const declared = Number(request.headers['content-length']);
        if (Number.isFinite(declared) && declared > RELAY_BATCH_LIMITS.bytes)
          return done(tooLarge('bytes-per-batch', RELAY_BATCH_LIMITS.bytes, `A relay batch is at most ${RELAY_BATCH_LIMITS.bytes} bytes; split it.`));
        done(null, payload);
      },
    },
    async (request, reply: FastifyReply) => {
      const relay = request.relay!;
      const entries = request.body.reports;
      const batchKey = checkRelayBatch(request.headers['idempotency-key'], entries);
      // Environments the token covers.
      const outside = entries.findIndex((e) => relay.environments !== null && !relay.environments.includes(e.environment));
      if (outside >= 0)
        throw problem('forbidden', `This relay token does not cover environment "${entries[outside]!.environment}" (reports/${outside}).`, {
          errors: [{ path: `/reports/${outside}/environment`, message: 'not covered by this relay token' }],
        });
      // Every attributed key: an active SDK key of the report's environment.
      const ids = [...new Set(entries.map((e) => e.key))];
      const keys = new Map<string, KeyRow>();
      for (let i = 0; i < ids.length; i += 500) {
        const chunk = ids.slice(i, i + 500);
        const found = await app.store.all<KeyRow>(
          `SELECT id, kind, environment, client_side, revoked_at, expires_at FROM tokens WHERE id IN (${chunk.map(() => '?').join(', ')})`,
          chunk,
        );
        for (const k of found) keys.set(k.id, k);
      }
      const now = app.now();
      const keyIssues: Array<{ path: string; message: string }> = [];
      entries.forEach((e, i) => {
        if (keyIssues.length >= 20) return;
        const k = keys.get(e.key);
        const path = `/reports/${i}/key`;
        if (k?.kind !== 'sdk') keyIssues.push({ path, message: `no SDK key "${e.key}"` });
        else if (k.environment !== e.environment)
          keyIssues.push({ path, message: `SDK key "${e.key}" reads environment "${k.environment}", not "${e.environment}"` });
      });
      if (keyIssues.length > 0)
        throw problem('forbidden', `A report is attributed to a key it cannot come from; first: ${keyIssues[0]!.path}: ${keyIssues[0]!.message}`, {
          errors: keyIssues,
        });
      // The same shape checks as a direct report; a batch with an invalid report is refused whole.
      const shapeIssues = entries.flatMap((e, i) =>
        reportProblems(e.report as MetricsReport).map((p) => ({ ...p, path: `/reports/${i}/report${p.path}` })),
      );
      if (shapeIssues.length > 0) {
        instruments.reports.inc({ result: 'invalid' }, entries.length);
        throw validationError(shapeIssues.slice(0, 20));
      }
      // Each attributed key pays its own quotas, as if its SDK had sent the reports directly.
      const perKey = new Map<string, { rows: number; bytes: number }>();
      for (const e of entries) {
        const q = perKey.get(e.key) ?? { rows: 0, bytes: 0 };
        q.rows += e.report.stats.length;
        q.bytes += Buffer.byteLength(JSON.stringify(e.report));
        perKey.set(e.key, q);
      }
      for (const [key, q] of perKey) {
        const over = quotas.take(key, 'bytes', q.bytes) ?? quotas.take(key, 'rows', q.rows);
        if (over) {
          instruments.reports.inc({ result: 'refused' }, entries.length);
          reply.header('retry-after', String(over.retryAfterSeconds));
          throw problem(
            'too-many-requests',
            `SDK key "${key}" is over its ${over.limit} allowance (${over.allowance} per minute); retry the batch with the same Idempotency-Key in ${over.retryAfterSeconds} s.`,
            { extensions: { limit: over.limit, allowance: over.allowance, key } },
          );
        }
      }
      // Screen each report's rows with its own key's environment and side.
      const items: IngestItem[] = [];
      const itemIndex: number[] = [];
      const refused: Array<{ index: number; limit: string; message: string }> = [];
      let droppedRows = 0;
      entries.forEach((e, i) => {
        const key = keys.get(e.key)!;
        // A key revoked (or expired) since its SDK reported: final for that report, as a 401 would be to the SDK.
        if (key.revoked_at !== null || (key.expires_at !== null && Number(key.expires_at) <= now)) {
          refused.push({ index: i, limit: 'key-revoked', message: `SDK key "${e.key}" is revoked or expired` });
          return;
        }
        const clientSide = bool(key.client_side);
        const report = e.report as MetricsReport;
        const screened = screenReport(report, catalog.get(e.environment), now, app.metrics.reportLimits, clientSide);
        for (const [reason, n] of Object.entries(screened.byReason)) instruments.droppedRows.inc({ reason }, n);
        if (screened.kept.length === 0 && screened.dropped > 0) {
          const first = screened.issues[0]!;
          refused.push({ index: i, limit: first.limit, message: `${first.path}: ${first.message}` });
          return;
        }
        droppedRows += screened.dropped;
        items.push({
          environment: e.environment,
          source: { tokenId: key.id, clientSide },
          report: screened.dropped > 0 ? { ...report, stats: screened.kept } : report,
        });
        itemIndex.push(i);
      });
      try {
        const result = await app.metrics.ingester.commitRelayBatch({ tokenId: relay.tokenId, batchKey }, items);
        if (result.replay) return { accepted: true, replay: true, reports: entries.length };
        const counted = result.fresh.filter(Boolean).length;
        return {
          accepted: true,
          replay: false,
          reports: entries.length,
          counted,
          duplicate: result.fresh.length - counted,
          ...(refused.length > 0 ? { refused } : {}),
          ...(droppedRows > 0 ? { droppedRows } : {}),
        };
      } catch (err) {
        reply.header('retry-after', '1');
        if (err instanceof IngestUnavailable) throw problem('unavailable', err.message);
        request.log.error({ err }, 'relay metrics batch failed to commit');
        throw problem('unavailable', 'The batch could not be stored; retry it with the same Idempotency-Key (it will be counted once).');
      }
    },
  );
}
