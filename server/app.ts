/**
 * buildApp(options): the configured fastify instance, for main.ts and for tests.
 *
 * What other parts of the server can rely on (stable; ask in a code comment if you need a change):
 * - `app.store`: the database behind the store port (server/storage/port.ts): SQLite by default, PostgreSQL for
 *   replicas. Write SDK-visible data only through `await app.writer.write(actor, async (w) => ...)` (statements on
 *   `w.tx`; server/storage/writer.ts): it audits, bumps the environment version, appends the change log, notifies
 *   the other replicas, and after COMMIT feeds this replica's live state and change feed.
 * - `app.stores`: environments, tokens, flags (definitions), states (per environment, switches), segments, audit (server/storage/*-store.ts, server/auth/token-store.ts);
 *   every method is async except token authentication (in memory).
 * - `app.snapshots.get(env)` → EnvironmentSnapshot | null, `app.snapshots.version(env)`, and
 *   `app.snapshots.changesSince(env, version)` → Delta[] | null (null: no longer held; resync): synchronous, from this
 *   replica's live state (`app.live`, server/storage/live-state.ts), never the database.
 * - `app.changeFeed` (server/storage/change-feed.ts): 'change' { environment, delta } after every commit (this
 *   replica's or another's), in version order; 'environment.reset'; 'token.revoked' { tokenId }; 'auth.failure'
 *   { ip, scope, reason }; 'environment.created'.
 * - `app.follower` (server/storage/change-follower.ts): `catchUp(env)` reads what this replica has not seen yet.
 * - `app.duties.owns(duty)` / `app.duties.fence(tx, duty)`: background duties run on one replica (server/cluster/).
 * - `app.auth.admin(request)` / `app.auth.sdk(request)` → principal or a problem error (server/auth/authenticate.ts);
 *   hooks `adminAuthHook` / `sdkAuthHook` in server/auth/hooks.ts set `request.actor` / `request.sdk`. SDK keys may
 *   also arrive as websocket subprotocol `aviary-sdk-key.<key>`.
 * - `app.stores.states.updateFlagState(env, flagKey, mutate, actor, reason, { guard })`: one transaction with audit,
 *   change log, version bump (what the canary guard drives, actor { tokenId: null, name: 'canary-guard' }).
 * - `app.receipts`: decorated by the stream plugin (`waitFor(env, version, timeoutMs)`, across replicas on
 *   PostgreSQL); the kill route awaits it to report delivery.
 * - Errors: throw `problem(kind, detail)` / `validationError(issues)` from server/errors.ts; a
 *   `DatabaseUnavailableError` from the port becomes 503 with Retry-After.
 * - `app.now()`: the injected clock.
 * - Durability: `await app.writer.durable()` before acknowledging a write (admin writes and SDK metrics reports do it
 *   in an onSend hook): on SQLite the WAL fsync (synchronous=NORMAL, checkpoints on a worker, an unclean stop moves
 *   versions forward at the next boot: storage/server-state.ts); on PostgreSQL a commit is already durable.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { Delta } from '@aviary/sdk/protocol';
import type { EnvironmentSnapshot, StreamKey } from '@aviary/sdk/core';
import { adminAuthHook, sdkAuthHook } from './auth/hooks.js';
import { createAuthenticator, type Authenticator, type SdkPrincipal } from './auth/authenticate.js';
import { TokenStore } from './auth/token-store.js';
import type { TrustProxy } from './config.js';
import { problemErrorHandler, problemFrameworkErrors, problemNotFoundHandler } from './errors.js';
import { environmentRoutes } from './admin/environment-routes.js';
import { consolePlugin, type ConsolePluginOptions } from './console/console-plugin.js';
import { sdkBundlePlugin } from './console/sdk-bundle-plugin.js';
import { tokenRoutes } from './admin/token-routes.js';
import { meRoutes } from './admin/me-routes.js';
import { roleEnforcement } from './auth/role-hook.js';
import { flagRoutes } from './admin/flag-routes.js';
import { adminEventsRoutes, type AdminEventsOptions } from './admin/events-routes.js';
import { explainRoutes } from './admin/explain-routes.js';
import { flagStateRoutes } from './admin/flag-state-routes.js';
import { segmentRoutes } from './admin/segment-routes.js';
import { auditRoutes } from './admin/audit-routes.js';
import { historyRoutes } from './admin/history-routes.js';
import { snapshotRoutes } from './sdk-api/snapshot-routes.js';
import { evaluateRoutes } from './sdk-api/evaluate-routes.js';
import { sdkCors } from './sdk-api/cors.js';
import { opsPlugin } from './ops/ops-plugin.js';
import { lazyChildLoggerFactory } from './ops/logging.js';
import { RequestLogController } from './ops/request-log.js';
import { openapiRoute } from './openapi/openapi-route.js';
import { installValidation } from './openapi/validation.js';
import { streamRoutes, type StreamPluginOptions } from './stream/stream-routes.js';
import { ofrepRoutes } from './ofrep/ofrep-routes.js';
import { relayInfoRoute } from './relay/relay-info-route.js';
import { OfrepEventStreams, type OfrepEventsOptions } from './ofrep/ofrep-events.js';
import { setupMetrics, type MetricsOptions } from './metrics/metrics-setup.js';
import { setupLifecycle } from './lifecycle/lifecycle-setup.js';
import { metricsAdminRoutes, metricsIngestRoutes } from './metrics/metrics-routes.js';
import { relayBatchRoutes } from './metrics/relay-batch-routes.js';
import { setupCanaries, type CanaryOptions } from './canary/canary-setup.js';
import { canaryRoutes } from './canary/canary-routes.js';
import { gitopsRoutes } from './gitops/gitops-routes.js';
import { changeRequestRoutes } from './change-requests/change-request-routes.js';
import { setupSchedules, type ScheduleOptions } from './schedules/schedule-setup.js';
import { scheduleRoutes } from './schedules/schedule-routes.js';
import { setupWebhooks, type WebhookOptions } from './webhooks/webhook-setup.js';
import { webhookRoutes } from './webhooks/webhook-routes.js';
import { setupTriggers, type TriggerOptions } from './triggers/trigger-setup.js';
import { triggerRoutes } from './triggers/trigger-routes.js';
import { triggerHookRoutes } from './triggers/hook-routes.js';
import { ConsoleAuth } from './oidc/console-auth.js';
import { oidcRoutes } from './oidc/oidc-routes.js';
import type { OidcSettings } from './oidc/oidc-settings.js';
import { SessionStore } from './oidc/session-store.js';
import { DEFAULT_EVALUATION_TIME, EvaluationTimeBudget, type EvaluationTimeLimits } from './limits/evaluation-time.js';
import { ChangeFeed } from './storage/change-feed.js';
import { ChangeFollower } from './storage/change-follower.js';
import { EnvironmentStore } from './storage/environment-store.js';
import { AuditStore } from './storage/audit-store.js';
import { HistoryStore } from './storage/history-store.js';
import { ChangeRequestStore } from './storage/change-request-store.js';
import { FlagDefinitionStore } from './storage/flag-definition-store.js';
import { FlagStateStore } from './storage/flag-state-store.js';
import { LiveState } from './storage/live-state.js';
import type { StorePort } from './storage/port.js';
import { SegmentStore } from './storage/segment-store.js';
import { markRunning, markStopped } from './storage/server-state.js';
import { openSqlite } from './storage/sqlite-port.js';
import { Writer, type Actor, DEFAULT_CHANGE_LOG_LIMIT, VERSION_GAP } from './storage/writer.js';
import { SingleProcessDuties, type Duties } from './cluster/duties.js';
import { LeaseDuties } from './cluster/leases.js';

/** Options of {@link buildApp}. */
export interface BuildAppOptions {
  /** SQLite file to open (and migrate). Ignored when `store` is given. */
  dbPath?: string;
  /** An already open (and migrated) store: SQLite (`openSqlite`) or PostgreSQL (`openPostgres`). The app closes it. */
  store?: StorePort;
  /** Replicas on PostgreSQL: how often to poll the change log in case a notification was lost, lease timings. */
  replica?: { pollMs?: number; leaseMs?: number; id?: string };
  /** Accepted as an admin token (`AVIARY_ADMIN_TOKEN`). */
  adminToken?: string;
  /** Environment key → SDK key (`AVIARY_SDK_KEY_<ENV>`). */
  sdkKeys?: Record<string, string>;
  /** Clock (epoch ms); tests inject one. */
  now?: () => number;
  /** fastify logger option, or a pino-compatible logger instance. Default: no logging. */
  logger?: FastifyServerOptions['logger'] | FastifyBaseLogger;
  /** Change-log versions kept per environment. */
  changeLogLimit?: number;
  /** Stream hub tuning (heartbeat interval, slow-consumer bound); tests shorten them. */
  stream?: StreamPluginOptions;
  /** OFREP change events: heartbeat and per-key stream bounds (server/ofrep/ofrep-events.ts; tests shorten them). */
  ofrepEvents?: OfrepEventsOptions;
  /** Metrics ingestion batching and retention (server/metrics/metrics-setup.ts). */
  metrics?: MetricsOptions;
  /** Canary guard timer (server/canary/canary-setup.ts). */
  canary?: CanaryOptions;
  /** Scheduled changes: the runner's poll interval (server/schedules/schedule-setup.ts). */
  schedules?: ScheduleOptions;
  /** Outbound webhooks: worker poll, retry delays, request timeout (server/webhooks/webhook-setup.ts). */
  webhooks?: WebhookOptions;
  /** Triggers: the per-trigger rate limit (server/triggers/trigger-setup.ts). */
  triggers?: TriggerOptions;
  /** Server-side evaluation time per SDK key (`AVIARY_EVAL_MS_PER_SECOND`; server/limits/evaluation-time.ts). */
  evaluationTime?: Partial<EvaluationTimeLimits>;
  /** Failed authentications per client address before failing requests get 429 (`AVIARY_AUTH_FAILURE_*`). */
  authFailures?: { limit?: number; windowMs?: number };
  /** Requests slower than this (ms) are logged at `warn` (`AVIARY_SLOW_REQUEST_MS`). Default 1000. */
  slowRequestMs?: number;
  /** Proxies whose `X-Forwarded-For` entries are trusted (`AVIARY_TRUST_PROXY`, server/config.ts). Default: none. */
  trustProxy?: TrustProxy;
  /** The admin event stream (`GET /api/v1/events`): heartbeat and bounds (server/admin/events-routes.ts). */
  adminEvents?: AdminEventsOptions;
  /** The web console: where its build is (tests serve a copy they rebuild). */
  console?: ConsolePluginOptions;
  /** OpenID Connect sign-in for the console (`AVIARY_OIDC_*`, server/oidc/). Default: off (admin tokens only). */
  oidc?: OidcSettings;
}

/** What an app's boot produced, for main.ts to print. */
export interface BootInfo {
  /** Set only on the boot that created the first admin token: print it once. */
  generatedAdminToken?: string;
}

/** The stores decorated as `app.stores`. */
export interface Stores {
  environments: EnvironmentStore;
  tokens: TokenStore;
  /** Flag definitions (server/storage/flag-definition-store.ts). */
  flags: FlagDefinitionStore;
  /** Flag state per environment, kill switches, the panic button (server/storage/flag-state-store.ts). */
  states: FlagStateStore;
  segments: SegmentStore;
  audit: AuditStore;
  /** Every version of every flag state (server/storage/history-store.ts). */
  history: HistoryStore;
  /** Change requests of environments that require approval (server/storage/change-request-store.ts). */
  changeRequests: ChangeRequestStore;
}

/** Snapshot access decorated as `app.snapshots`. */
export interface Snapshots {
  get(environment: string): EnvironmentSnapshot | null;
  version(environment: string): number | null;
  changesSince(environment: string, version: number): Delta[] | null;
  /** The keys relays check locally (relay stream audience only; issue 13). */
  keys?(environment: string): StreamKey[];
}

/** Delivery receipts (decorated by the stream hub when it is registered). */
export interface Receipts {
  /** Resolves with how many subscribers acknowledged `version` of `environment` within `timeoutMs`. */
  waitFor(environment: string, version: number, timeoutMs: number): Promise<unknown>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The database (store port: server/storage/port.ts). */
    store: StorePort;
    /** This replica's in-memory snapshots of every environment (server/storage/live-state.ts). */
    live: LiveState;
    /** How committed changes reach this replica (server/storage/change-follower.ts). */
    follower: ChangeFollower;
    /** Which background duties this replica owns (server/cluster/). */
    duties: Duties;
    /** This replica's id (leases, its row of connected SDKs). */
    replicaId: string;
    writer: Writer;
    stores: Stores;
    snapshots: Snapshots;
    changeFeed: ChangeFeed;
    auth: Authenticator;
    now: () => number;
    boot: BootInfo;
    receipts?: Receipts;
    /** One evaluation-time allowance per SDK key, shared by `POST /sdk/v1/evaluate` and OFREP. */
    evaluationTime: EvaluationTimeBudget;
    /** Console sessions of people signed in with OpenID Connect (server/oidc/); null when OIDC is not configured. */
    consoleAuth: ConsoleAuth | null;
  }
  interface FastifyRequest {
    /** Set by adminAuthHook. */
    actor?: Actor;
    /** Set by sdkAuthHook. */
    sdk?: SdkPrincipal;
  }
}

/** Builds the app: opens/migrates the database, boots defaults and tokens, registers every route plugin. */
export async function buildApp(options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const store = options.store ?? openSqlite(options.dbPath ?? './data/aviary.db');
  const now = options.now ?? Date.now;
  const loggerOption = options.logger ?? false;
  const isLoggerInstance = typeof loggerOption === 'object' && loggerOption !== null && 'child' in loggerOption;
  const requestLog = new RequestLogController();
  const app = Fastify({
    // Always a logger, silent unless one is configured: fastify reports finished requests to its log controller only
    // when it has a logger, and that is where request metrics are recorded (server/ops/request-log.ts).
    ...(isLoggerInstance
      ? { loggerInstance: loggerOption as FastifyBaseLogger }
      : { logger: (loggerOption || { level: 'silent' }) as FastifyServerOptions['logger'] }),
    // Per-request logging and request metrics happen when fastify reports a finished request to its log controller
    // (server/ops/request-log.ts; fastify's own per-request lines are off), and request loggers are created only when
    // used: on the SDK hot path both cost more than authentication and evaluation together (docs/architecture.md).
    logController: requestLog,
    childLoggerFactory: lazyChildLoggerFactory,
    // Behind a proxy, AVIARY_TRUST_PROXY names the hops to trust, so request.ip (rate limits, logs) is the client's.
    trustProxy: options.trustProxy ?? false,
    return503OnClosing: true,
    // Flag keys may be 128 characters (CONTRACT §1); fastify's default of 100 would make long keys unreachable.
    routerOptions: { maxParamLength: 512 },
    frameworkErrors: problemFrameworkErrors,
  });

  const changeLogLimit = options.changeLogLimit ?? DEFAULT_CHANGE_LOG_LIMIT;
  const feed = new ChangeFeed();
  const live = new LiveState(store, changeLogLimit);
  const follower = new ChangeFollower(store, live, feed, app.log, now);
  const writer = new Writer(
    store,
    (events) => follower.publish(events),
    now,
    changeLogLimit,
    (env) => live.version(env),
  );
  follower.recover = async (env, served) => {
    await writer.write({ tokenId: null, name: 'system' }, async (w) => {
      const moved = await w.tx.run('UPDATE environments SET version = ? WHERE key = ? AND version < ?', [served + VERSION_GAP, env, served]);
      if (moved) {
        w.audit({
          action: 'server.recover',
          resourceType: 'environment',
          resourceKey: env,
          environment: env,
          after: { served, version: served + VERSION_GAP },
          reason:
            'the database was behind the versions this replica had served (a failover that lost commits?); versions moved past them so every SDK resyncs',
        });
      }
    });
  };
  const environments = new EnvironmentStore(store, writer, feed, (env) => live.load(env));
  const tokens = new TokenStore(store, writer, feed, now);
  const flags = new FlagDefinitionStore(store, writer);
  const states = new FlagStateStore(store, writer);
  const segments = new SegmentStore(store, writer, (key, sql) => states.usingSegment(key, sql));
  const audit = new AuditStore(store);
  const history = new HistoryStore(store);
  const changeRequests = new ChangeRequestStore(store, writer, states);
  const replicaId = options.replica?.id ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const duties: Duties =
    store.dialect === 'postgres'
      ? new LeaseDuties(store, { log: app.log, holder: replicaId, ...(options.replica?.leaseMs ? { leaseMs: options.replica.leaseMs } : {}) })
      : new SingleProcessDuties();

  let boot: BootInfo;
  try {
    await environments.ensureDefaults();
    if ((await markRunning(store, writer, now())).recovered) {
      app.log.warn('the previous server process did not stop cleanly: environment versions moved forward so every SDK resyncs');
    }
    boot = await tokens.bootstrap({
      adminToken: options.adminToken,
      sdkKeys: options.sdkKeys ?? {},
      environments: (await environments.list()).map((e) => e.key),
    });
    await follower.loadAll();
    await follower.follow(options.replica?.pollMs ?? 2000);
    await tokens.follow(options.replica?.pollMs ?? 2000);
  } catch (err) {
    // A configuration error (an SDK key for an unknown environment, say): release the database before failing.
    await follower.close();
    await store.close();
    throw err;
  }

  app.decorate('store', store);
  app.decorate('live', live);
  app.decorate('follower', follower);
  app.decorate('duties', duties);
  app.decorate('replicaId', replicaId);
  app.decorate('writer', writer);
  app.decorate('changeFeed', feed);
  app.decorate('now', now);
  app.decorate('boot', boot);
  app.decorate('stores', { environments, tokens, flags, states, segments, audit, history, changeRequests } satisfies Stores);
  app.decorate('snapshots', {
    get: (env: string) => live.get(env),
    version: (env: string) => live.version(env),
    changesSince: (env: string, version: number) => live.changesSince(env, version),
    keys: (env: string) => live.keys(env),
  } satisfies Snapshots);
  app.decorate('auth', createAuthenticator(tokens, feed));
  const consoleAuth = options.oidc
    ? new ConsoleAuth(
        new SessionStore(store, now, { idleMs: options.oidc.sessionIdleMs, maxMs: options.oidc.sessionMaxMs }),
        feed,
        options.oidc.publicUrl.startsWith('https:'),
      )
    : null;
  app.decorate('consoleAuth', consoleAuth);
  app.decorate('evaluationTime', new EvaluationTimeBudget({ ...DEFAULT_EVALUATION_TIME, ...options.evaluationTime }));
  app.decorateRequest('actor', undefined);
  app.decorateRequest('sdk', undefined);
  // Background duties start once the server is ready and are given up first on close, so another replica takes over.
  app.addHook('onReady', async () => duties.start());
  app.addHook('preClose', async () => duties.stop());

  // Bodies are JSON (and form bodies on the kill switches): fastify's default text/plain parser would hand a string to
  // the validator, answering 400 "must be object" where a wrong media type deserves 415.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(problemErrorHandler);
  app.setNotFoundHandler(problemNotFoundHandler);
  // Request bodies are validated with the OpenAPI spec's schemas, strictly (no coercion): server/openapi/.
  installValidation(app);
  // First, so its decorations (metrics, failed-auth limiter) and route table cover every route registered after it.
  await app.register(opsPlugin, {
    requestLog,
    ...(options.authFailures ? { authFailures: options.authFailures } : {}),
    ...(options.slowRequestMs !== undefined ? { slowRequestMs: options.slowRequestMs } : {}),
  });
  await app.register(openapiRoute);
  app.addHook('onClose', async () => {
    await tokens.close();
    await follower.close();
    await markStopped(store).catch((err: unknown) => app.log.warn({ err }, 'cannot record the clean stop'));
    await store.close();
  });
  // Metrics ingestion and canaries: the guard runs after every ingest batch that touched a flag.
  setupMetrics(app, options.metrics ?? {}, (touched) => app.canaries.outcomesArrived(touched));
  // Flag lifecycle gauge (CONTRACT §15; flag_usage is kept by the ingester): server/lifecycle/.
  setupLifecycle(app);
  setupCanaries(app, states, options.canary ?? {});
  setupSchedules(app, states, options.schedules ?? {});
  setupWebhooks(app, options.webhooks ?? {});
  setupTriggers(app, states, options.triggers ?? {});

  // Before the admin routes: it decorates `receipts`, which the kill route awaits.
  await app.register(streamRoutes, options.stream ?? {});
  await app.register(
    async (admin) => {
      admin.addHook('onRequest', adminAuthHook);
      // Roles (CONTRACT §14): every route's operation declares the roles it allows; checked before anything changes.
      roleEnforcement(admin);
      // A write is acknowledged only once it is on stable storage (see server/storage/wal-sync.ts).
      admin.addHook('onSend', (request, _reply, payload, done) => {
        if (request.method === 'GET' || request.method === 'HEAD') return done(null, payload);
        writer.durable().then(() => done(null, payload), done);
      });
      // An empty body with a JSON content type is "no body" (so `curl -X POST -H 'content-type: application/json' .../kill`
      // works in an incident); anything else parses as JSON with prototype poisoning refused. PATCH bodies may be sent
      // as JSON merge patches (RFC 7396); they parse the same way.
      const parseJson = admin.getDefaultJsonParser('error', 'error');
      const parseJsonOrEmpty = (request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void) => {
        if (String(body).trim() === '') return done(null, undefined);
        parseJson(request, String(body), done);
      };
      admin.removeContentTypeParser('application/json');
      admin.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonOrEmpty);
      admin.addContentTypeParser('application/merge-patch+json', { parseAs: 'string' }, parseJsonOrEmpty);
      await admin.register(environmentRoutes);
      await admin.register(flagRoutes);
      await admin.register(flagStateRoutes);
      await admin.register(explainRoutes);
      await admin.register(segmentRoutes);
      await admin.register(tokenRoutes);
      await admin.register(auditRoutes);
      await admin.register(adminEventsRoutes, options.adminEvents ?? {});
      await admin.register(historyRoutes);
      await admin.register(metricsAdminRoutes);
      await admin.register(canaryRoutes);
      await admin.register(changeRequestRoutes);
      await admin.register(scheduleRoutes);
      await admin.register(webhookRoutes);
      await admin.register(triggerRoutes);
      await admin.register(meRoutes);
      await admin.register(gitopsRoutes); // flags as code (server/gitops/)
    },
    { prefix: '/api/v1' },
  );
  await app.register(
    async (sdk) => {
      // Before the auth hook: a browser's preflight carries no key (server/sdk-api/cors.ts).
      await sdkCors(sdk);
      sdk.addHook('onRequest', sdkAuthHook);
      await sdk.register(snapshotRoutes);
      await sdk.register(evaluateRoutes);
      // Metrics reports are acknowledged only once on stable storage, like admin writes: the onSend hook lives in
      // the ingest route's own context, so the reads (flags, evaluate: the hot path) run no onSend hook at all.
      await sdk.register(async (ingest) => {
        ingest.addHook('onSend', (_request, _reply, payload, done) => {
          writer.durable().then(() => done(null, payload), done);
        });
        await ingest.register(metricsIngestRoutes);
      });
    },
    { prefix: '/sdk/v1' },
  );
  // Relay metrics batches (issue 13, relayflow): a relay token, not an SDK key, so its own context and auth hook.
  await app.register(relayBatchRoutes, { prefix: '/sdk/v1' });

  // relay: what a relay token covers (GET /sdk/v1/relay; server/relay/relay-info-route.ts).
  await app.register(relayInfoRoute, { prefix: '/sdk/v1', environments: () => live.environments() });
  app.decorate('ofrepEvents', new OfrepEventStreams(app, options.ofrepEvents ?? {}));
  // Before fastify waits for open requests: an event stream never ends on its own.
  app.addHook('preClose', async () => app.ofrepEvents.close());
  await app.register(ofrepRoutes, { prefix: '/ofrep/v1' });
  // Trigger URLs (no auth header: the secret in the path is the credential; any body): server/triggers/hook-routes.ts.
  await app.register(triggerHookRoutes, { prefix: '/hooks/v1' });
  // Console sign-in with OpenID Connect (`/auth/...`; server/oidc/oidc-routes.ts).
  await app.register(oidcRoutes, { settings: options.oidc ?? null, consoleAuth });
  await app.register(sdkBundlePlugin);
  await app.register(consolePlugin, options.console ?? {});

  return app;
}
