/**
 * Operations: `/healthz`, `/readyz`, `/metrics` (Prometheus), request metrics for every request (recorded through the
 * app's `logController`, server/ops/request-log.ts), and the failed-authentication rate limiter (`app.authLimiter`,
 * enforced by the auth hooks). Registered on the root instance *before* the route plugins, and not encapsulated, so
 * its decorations and route table cover every route.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { DUTIES } from '../cluster/duties.js';
import { Gauge, register as globalRegistry, type Registry } from 'prom-client';
import type { EnvironmentSnapshot } from '@aviary/sdk/core';
import { problemDocument, sendProblem } from '../errors.js';
import { AuthFailureLimiter, type AuthFailureLimiterOptions } from '../rate-limit/auth-failure-limiter.js';
import type { AuthFailureEvent } from '../storage/change-feed.js';
import { migrationsFolder } from '../storage/migrations.js';
import { readSnapshot } from '../storage/snapshot.js';
import { SqlitePort } from '../storage/sqlite-port.js';
import { createServerMetrics, type ServerMetrics } from './prometheus.js';
import { registerHistogram } from './request-metrics.js';
import type { RequestLogController } from './request-log.js';
import { FSYNC_BUCKETS, type FsyncStats } from '../storage/wal-sync.js';

const EMPTY_FSYNC_STATS: FsyncStats = { counts: new Array<number>(FSYNC_BUCKETS.length + 1).fill(0), sum: 0, count: 0 };

declare module 'fastify' {
  interface FastifyInstance {
    /** Prometheus registry and the server's metrics; plugins may register more metrics in `registry`. */
    prometheus: ServerMetrics;
    /** Failed-authentication rate limit per client address. */
    authLimiter: AuthFailureLimiter;
    /** Every route registered after the ops plugin (method and URL template), for the spec-coverage test and tools. */
    routeTable: RouteEntry[];
  }
}

/** A registered route. */
export interface RouteEntry {
  method: string;
  url: string;
  /** Registered with `{ websocket: true }` (@fastify/websocket). */
  websocket: boolean;
}

/** Options of {@link opsPlugin}. */
export interface OpsOptions {
  /** Failed-authentication rate limit. Defaults: 30 failures per 60 s (`AVIARY_AUTH_FAILURE_LIMIT`, `AVIARY_AUTH_FAILURE_WINDOW_SECONDS`). */
  authFailures?: AuthFailureLimiterOptions;
  /** Requests slower than this (ms) are logged at `warn` (`AVIARY_SLOW_REQUEST_MS`). Default 1000. */
  slowRequestMs?: number;
  /** The app's `logController`: it records the request metrics of every finished request. */
  requestLog?: RequestLogController;
  /** Relay mode (`aviary relay`, server/relay/): no database; readiness and flag gauges come from the relay. */
  relay?: RelayOps;
}

/** What the ops plugin asks a relay (server/relay/relay-app.ts). */
export interface RelayOps {
  /** The environments it serves, for `aviary_flags`. */
  snapshots(): EnvironmentSnapshot[];
  /** `/readyz`: 200 with `body` when it holds a snapshot of every environment in scope; otherwise 503 with `detail`. */
  readiness(): { ready: boolean; detail: string; body: Record<string, unknown> };
  /** Registers the relay's own metrics (upstream state, lag, connected SDKs). */
  register(registry: Registry): void;
}

/**
 * The `when` of the newest migration in `migrations/sqlite/meta/_journal.json` or `migrations/postgres/meta/_journal.json`
 * (the dialect's): the database must have applied it.
 */
function latestMigration(dialect: 'sqlite' | 'postgres'): number {
  const journal = JSON.parse(readFileSync(join(migrationsFolder(dialect), 'meta', '_journal.json'), 'utf8')) as {
    entries: { when: number }[];
  };
  return Math.max(0, ...journal.entries.map((e) => e.when));
}

const plugin: FastifyPluginAsync<OpsOptions> = async (app: FastifyInstance, options) => {
  const relay = options.relay;
  const metrics = createServerMetrics(relay ? () => relay.snapshots() : () => app.live.environments().map((env) => app.live.get(env)!));
  relay?.register(metrics.registry);
  const limiter = new AuthFailureLimiter({ now: app.now, ...options.authFailures });
  registerHistogram(
    metrics.registry,
    'aviary_wal_fsync_seconds',
    "Duration of each WAL fsync that acknowledged writes wait for (kill switches included): the disk's share of write latency.",
    FSYNC_BUCKETS,
    () => (app.store instanceof SqlitePort ? app.store.fsyncStats : EMPTY_FSYNC_STATS),
  );
  // Which background duties this replica runs now (one replica each: server/cluster/), and how far it follows the log.
  new Gauge({
    name: 'aviary_background_duty',
    help: 'Background duties this replica owns now (1) or not (0): canary guards, retention. Exactly one replica owns each.',
    labelNames: ['duty'] as const,
    registers: [metrics.registry],
    collect() {
      if (relay) return;
      for (const duty of DUTIES) this.set({ duty }, app.duties.owns(duty) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'aviary_replica_followed_versions',
    help: 'Environment versions this replica applied from other replicas (PostgreSQL), since it started.',
    registers: [metrics.registry],
    collect() {
      if (!relay) this.set(app.follower.followed);
    },
  });
  app.decorate('prometheus', metrics);
  app.decorate('authLimiter', limiter);
  const routeTable: RouteEntry[] = [];
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const websocket = (route as { websocket?: boolean }).websocket === true;
    for (const method of methods) routeTable.push({ method: String(method), url: route.url, websocket });
  });

  const onAuthFailure = (event: AuthFailureEvent) => {
    metrics.authFailures.inc({ scope: event.scope, reason: event.reason });
    limiter.recordFailure(event.ip);
  };
  app.changeFeed.on('auth.failure', onAuthFailure);
  app.addHook('onClose', async () => {
    app.changeFeed.off('auth.failure', onAuthFailure);
  });

  // The limit itself is checked by the auth hooks (server/auth/hooks.ts), so it costs only the routes that take a
  // token, and health checks and scrapes of a locked-out address still pass.

  // Request metrics and the slow-request warning are recorded when fastify reports each finished request to its
  // LogController (server/ops/request-log.ts), not by a global onResponse hook that every request would run.
  options.requestLog?.attach(metrics.requests, options.slowRequestMs ?? 1000, app.log);

  app.get('/healthz', async () => ({ status: 'ok' as const }));

  const required = relay ? 0 : latestMigration(app.store.dialect);
  const READ_CHECK_MS = 1000;
  const PING_MS = 1000;
  const lastReadCheck: { at: number; error: unknown } = { at: -Infinity, error: null };
  app.get('/readyz', async (request, reply) => {
    const instance = '/readyz';
    if (relay) {
      const r = relay.readiness();
      if (r.ready) return r.body;
      return sendProblem(reply, problemDocument('unavailable', r.detail, { instance, extensions: r.body }));
    }
    try {
      await app.store.ping(PING_MS);
    } catch (err) {
      request.log.warn({ err }, 'readiness: the database cannot take writes');
      const standby = err instanceof Error && /read-only standby/.test(err.message);
      return sendProblem(
        reply,
        problemDocument(
          'unavailable',
          `${standby ? 'The database is a read-only standby' : 'The database does not answer'}; connected SDKs keep their flags, writes are refused until it is back.`,
          { instance, extensions: { checks: { database: standby ? 'read-only' : 'unreachable' } } },
        ),
      );
    }
    let applied = 0;
    try {
      applied = (await app.store.latestMigration()) ?? 0;
    } catch (err) {
      request.log.warn({ err }, 'readiness: cannot read the migrations table');
      return sendProblem(
        reply,
        problemDocument('unavailable', 'The database has not been migrated.', {
          instance,
          extensions: { checks: { database: 'ok', migrations: 'missing' } },
        }),
      );
    }
    if (applied < required) {
      return sendProblem(
        reply,
        problemDocument('unavailable', 'The database is missing migrations.', {
          instance,
          extensions: { checks: { database: 'ok', migrations: 'pending' } },
        }),
      );
    }
    // Ready means able to serve flags: read what SDKs and the console read (every environment's snapshot, from the
    // database) and check this replica holds every environment, at most once per READ_CHECK_MS whatever the probe
    // rate, so a damaged table is not reported ready.
    if (app.now() - lastReadCheck.at >= READ_CHECK_MS) {
      lastReadCheck.at = app.now();
      try {
        for (const env of await app.stores.environments.list()) {
          await readSnapshot(app.store, env.key);
          if (!app.live.has(env.key)) await app.follower.syncAll();
        }
        lastReadCheck.error = null;
      } catch (err) {
        lastReadCheck.error = err;
      }
    }
    if (lastReadCheck.error !== null) {
      request.log.error({ err: lastReadCheck.error }, 'readiness: flags cannot be read');
      return sendProblem(
        reply,
        problemDocument('unavailable', 'Flags cannot be read from the database; see the server log.', {
          instance,
          extensions: { checks: { database: 'unreadable', migrations: 'ok' } },
        }),
      );
    }
    return { status: 'ok' as const, checks: { database: 'ok', migrations: 'ok', flags: 'ok' } };
  });

  // Per-app metrics, then the process-wide ones other plugins keep on prom-client's default registry
  // (ingestion, canary decisions: server/metrics/prometheus.ts).
  app.get('/metrics', async (_request, reply) => {
    const own = await metrics.registry.metrics();
    const shared = await globalRegistry.metrics();
    return reply.type(metrics.registry.contentType).send(shared ? `${own}\n${shared}` : own);
  });
};

/**
 * Register on the root instance before the route plugins: `await app.register(opsPlugin)`. Not encapsulated
 * (fastify-plugin): its decorators and route table belong to the instance it is registered on.
 */
export const opsPlugin = fp(plugin, { name: 'aviary-ops' });
