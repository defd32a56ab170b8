/**
 * `aviary relay` (issue 13, CONTRACT §10): the same product in relay mode. The server's own plugins (the stream hub
 * and its route, the SDK snapshot and evaluate routes, OFREP, the ops plugin's /healthz /readyz /metrics, the auth
 * hooks) run over a `RelayState` (server/relay/relay-state.ts) instead of the database's live state; it is fed by one
 * `UpstreamLink` per environment (server/relay/upstream.ts) and saved to the disk cache (server/relay/disk-cache.ts).
 * SDK keys are checked locally against the hashes upstream streamed; metric reports go to a `MetricsSink`.
 */
import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { Gauge, type Registry } from 'prom-client';
import { sdkAuthHook } from '../auth/hooks.js';
import { createAuthenticator } from '../auth/authenticate.js';
import type { Stores } from '../app.js';
import { problem, problemErrorHandler, problemFrameworkErrors, problemNotFoundHandler } from '../errors.js';
import { DEFAULT_EVALUATION_TIME, EvaluationTimeBudget } from '../limits/evaluation-time.js';
import { OfrepEventStreams } from '../ofrep/ofrep-events.js';
import { ofrepRoutes } from '../ofrep/ofrep-routes.js';
import { installValidation } from '../openapi/validation.js';
import { lazyChildLoggerFactory } from '../ops/logging.js';
import { opsPlugin } from '../ops/ops-plugin.js';
import { RequestLogController } from '../ops/request-log.js';
import { sdkCors } from '../sdk-api/cors.js';
import { evaluateRoutes } from '../sdk-api/evaluate-routes.js';
import { snapshotRoutes } from '../sdk-api/snapshot-routes.js';
import { ChangeFeed } from '../storage/change-feed.js';
import { DEFAULT_CHANGE_LOG_LIMIT } from '../storage/writer.js';
import { streamRoutes, type StreamPluginOptions } from '../stream/stream-routes.js';
import type { TrustProxy } from '../config.js';
import { readCached, readScope, writeCached, writeScope } from './disk-cache.js';
import { relayInfoRoute } from './relay-info-route.js';
import { relayMetricsRoute, type MetricsSink } from './metrics-sink.js';
import { relayBatchRoute } from './metrics-batch-route.js';
import { ForwarderFull, MetricsForwarder, type MetricsForwarderOptions } from './metrics-forwarder.js';
import { RelayState } from './relay-state.js';
import { UpstreamLink } from './upstream.js';

export interface RelayOptions {
  /** `AVIARY_UPSTREAM`. */
  upstream: string;
  /** `AVIARY_RELAY_TOKEN`. */
  token: string;
  /** `AVIARY_RELAY_CACHE`. */
  cacheDir: string;
  logger?: FastifyServerOptions['logger'] | FastifyBaseLogger;
  now?: () => number;
  /** Deltas kept per environment for this relay's SDKs' resumes. */
  changeLogLimit?: number;
  stream?: StreamPluginOptions;
  trustProxy?: TrustProxy;
  authFailures?: { limit?: number; windowMs?: number };
  slowRequestMs?: number;
  /** Where metric reports go (default: a `MetricsForwarder` journalling in `<cacheDir>/metrics`). */
  metricsSink?: MetricsSink;
  /** The metrics forwarder's period, batch and bound settings (relayflow; docs/relay.md). */
  metrics?: Partial<Pick<MetricsForwarderOptions, 'periodMs' | 'maxPendingReports' | 'maxDiskBytes' | 'minBackoffMs' | 'maxBackoffMs'>>;
  /** Reconnect windows towards upstream (tests shorten them). */
  backoff?: { initialMs?: number; maxMs?: number };
}

/** What the relay knows of its scope (from upstream's `GET /sdk/v1/relay`, or from its disk cache). */
export interface RelayScope {
  name: string;
  environments: string[];
  source: 'upstream' | 'cache';
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Relay mode only: the relay's state, scope and upstream links. */
    relay?: { state: RelayState; scope: RelayScope; links: Map<string, UpstreamLink> };
  }
}

/** Asks upstream what this relay serves; null when upstream cannot be reached (a refusal throws). */
async function fetchScope(upstream: string, token: string): Promise<RelayScope | null> {
  let res: Response;
  try {
    res = await fetch(`${upstream}/sdk/v1/relay`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) });
  } catch {
    return null;
  }
  if (res.status === 401 || res.status === 403) {
    const body = (await res.json().catch(() => ({}))) as { detail?: string };
    throw new Error(`upstream refused the relay token (${res.status}): ${body.detail ?? ''}`);
  }
  if (!res.ok) return null;
  const body = (await res.json()) as { name: string; environments: { key: string }[] };
  return { name: body.name, environments: body.environments.map((e) => e.key), source: 'upstream' };
}

/** Builds the relay: scope (upstream, else the disk cache), cached snapshots, links, and the server's plugins. */
export async function buildRelayApp(options: RelayOptions): Promise<FastifyInstance> {
  const now = options.now ?? Date.now;
  const loggerOption = options.logger ?? false;
  const isLoggerInstance = typeof loggerOption === 'object' && loggerOption !== null && 'child' in loggerOption;
  const requestLog = new RequestLogController();
  const app = Fastify({
    ...(isLoggerInstance
      ? { loggerInstance: loggerOption as FastifyBaseLogger }
      : { logger: (loggerOption || { level: 'silent' }) as FastifyServerOptions['logger'] }),
    logController: requestLog,
    childLoggerFactory: lazyChildLoggerFactory,
    trustProxy: options.trustProxy ?? false,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 512 },
    frameworkErrors: problemFrameworkErrors,
  });
  const feed = new ChangeFeed();
  const state = new RelayState(feed, options.changeLogLimit ?? DEFAULT_CHANGE_LOG_LIMIT, now);

  // The disk cache first: a relay restarted while upstream is down serves what it had at once.
  const cached = await readCached(options.cacheDir, (file, err) => app.log.warn({ file, err }, 'ignoring a damaged relay cache file'));
  let scope = await fetchScope(options.upstream, options.token);
  if (scope) await writeScope(options.cacheDir, scope);
  else {
    const saved = await readScope(options.cacheDir);
    if (!saved) throw new Error(`cannot reach upstream ${options.upstream} and there is no disk cache at ${options.cacheDir}`);
    scope = { ...saved, source: 'cache' };
  }
  for (const c of cached) if (scope.environments.includes(c.snapshot.environment)) state.hydrate(c.snapshot, c.keys, 'cache');

  // Each environment is saved after every applied version, one write at a time (the newest wins).
  const saving = new Map<string, Promise<void>>();
  const pending = new Set<string>();
  const save = (env: string) => {
    if (saving.has(env)) return void pending.add(env);
    const run = (async () => {
      do {
        pending.delete(env);
        const c = state.cached(env);
        if (c)
          await writeCached(options.cacheDir, c).catch((err: unknown) => app.log.warn({ err, environment: env }, 'cannot write the relay cache'));
      } while (pending.has(env));
    })().finally(() => saving.delete(env));
    saving.set(env, run);
  };

  app.decorate('changeFeed', feed);
  app.decorate('snapshots', state);
  app.decorate('now', now);
  // Until it holds every environment's keys, a relay cannot tell an unknown key from one it has not heard of yet: it
  // answers 503 (stream: close 1013, retried) instead of a final 401/4001 that would stop an SDK for good.
  const auth = createAuthenticator(state, feed);
  const relayScopeForAuth = scope;
  app.decorate('auth', {
    ...auth,
    sdk(request) {
      const principal = auth.sdk(request);
      if (principal instanceof Error && principal.statusCode === 401 && !relayScopeForAuth.environments.every((e) => state.has(e)))
        return problem('unavailable', 'This relay has not received its keys from upstream yet; retry shortly.');
      return principal;
    },
  });
  // The auth hooks and OFREP tickets read `stores.tokens` (authenticate, isRevoked, eventsTicket, authenticateTicket):
  // the relay answers them from the streamed hashes. It has no other store.
  app.decorate('stores', { tokens: state } as unknown as Stores);
  app.decorate('evaluationTime', new EvaluationTimeBudget({ ...DEFAULT_EVALUATION_TIME }));
  app.decorateRequest('actor', undefined);
  app.decorateRequest('sdk', undefined);
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(problemErrorHandler);
  app.setNotFoundHandler(problemNotFoundHandler);
  installValidation(app);

  const links = new Map<string, UpstreamLink>();
  app.decorate('relay', { state, scope, links });
  const relayScope = scope;
  await app.register(opsPlugin, {
    requestLog,
    ...(options.authFailures ? { authFailures: options.authFailures } : {}),
    ...(options.slowRequestMs !== undefined ? { slowRequestMs: options.slowRequestMs } : {}),
    relay: {
      snapshots: () => state.environments().map((env) => state.get(env)!),
      readiness: () => readiness(relayScope, state, links),
      register: (registry) => registerRelayMetrics(registry, relayScope, state, links, () => app.streamHub),
    },
  });
  // Metrics exactly once through relays (relayflow, server/relay/metrics-forwarder.ts): reports are journalled in the
  // cache dir before the SDK is answered, and forwarded in batches with a persisted idempotency key.
  const forwarder = options.metricsSink
    ? null
    : await MetricsForwarder.open({
        dir: join(options.cacheDir, 'metrics'),
        upstream: options.upstream,
        relayToken: options.token,
        registry: app.prometheus.registry,
        onEvent: (e) => app.log.warn(e, e.kind === 'retry' ? 'metrics batch failed; retrying with the same key' : 'upstream refused a metrics batch'),
        ...options.metrics,
      });
  const forwarderSink: MetricsSink = {
    accept: (principal, report) =>
      forwarder!.accept(principal, report).catch((err: unknown) => {
        throw problem('unavailable', err instanceof ForwarderFull ? err.message : 'The report could not be journalled at the relay; retry it.');
      }),
  };
  if (forwarder) app.addHook('onClose', async () => forwarder.close());
  await app.register(streamRoutes, options.stream ?? {});
  await app.register(
    async (sdk) => {
      await sdkCors(sdk);
      sdk.addHook('onRequest', sdkAuthHook);
      await sdk.register(snapshotRoutes);
      await sdk.register(evaluateRoutes);
      await sdk.register(relayMetricsRoute, { sink: options.metricsSink ?? forwarderSink });
    },
    { prefix: '/sdk/v1' },
  );
  // Metrics batches from relays chained below this one (relayflow): journalled here, forwarded in this relay's batches.
  if (forwarder) {
    await app.register(
      relayBatchRoute({
        forwarder,
        environments: () => relayScope.environments,
        relayScope: (secret) => {
          const info = state.authenticate(secret);
          return info?.kind === 'relay' ? { tokenId: info.id, environments: info.environments } : null;
        },
        sdkKeyIds: (environment) => new Set(state.keys(environment).flatMap((k) => (k.kind === 'sdk' ? [k.id] : []))),
      }),
      { prefix: '/sdk/v1' },
    );
  }
  // Chained relays ask this one what their token covers, as they would ask a server.
  await app.register(relayInfoRoute, { prefix: '/sdk/v1', environments: () => relayScope.environments });
  app.decorate('ofrepEvents', new OfrepEventStreams(app, {}));
  app.addHook('preClose', async () => app.ofrepEvents.close());
  await app.register(ofrepRoutes, { prefix: '/ofrep/v1' });

  for (const environment of scope.environments) {
    const link = new UpstreamLink({
      upstream: options.upstream,
      token: options.token,
      environment,
      state,
      sdks: () => app.streamHub.list(environment),
      applied: save,
      log: app.log,
      now,
      ...(options.backoff ? { backoff: options.backoff } : {}),
    });
    links.set(environment, link);
  }
  app.streamHub.onActivity = (env) => links.get(env)?.sdksChanged();
  app.addHook('onReady', async () => {
    for (const link of links.values()) link.start();
  });
  app.addHook('preClose', async () => {
    for (const link of links.values()) link.close();
  });
  app.addHook('onClose', async () => {
    state.stopExpiry();
    await Promise.all([...saving.values()]);
  });
  return app;
}

/** `/readyz`: ready once every environment in scope has a snapshot; says where each came from and the upstream state. */
function readiness(scope: RelayScope, state: RelayState, links: Map<string, UpstreamLink>) {
  const environments: Record<string, unknown> = {};
  let ready = true;
  for (const env of scope.environments) {
    const link = links.get(env);
    const version = state.version(env);
    if (version === null) ready = false;
    environments[env] = {
      snapshot: version === null ? 'none' : state.source(env),
      version,
      upstream: link?.state ?? 'connecting',
      upstreamVersion: link?.upstreamVersion ?? null,
      lagVersions: link ? link.lag().versions : null,
    };
  }
  const body = { status: ready ? 'ok' : 'unavailable', mode: 'relay', name: scope.name, scopeFrom: scope.source, environments };
  const missing = scope.environments.filter((e) => state.version(e) === null);
  return {
    ready,
    detail: `The relay holds no snapshot yet for ${missing.map((e) => `"${e}"`).join(', ')} (upstream not reached, and nothing in the disk cache).`,
    body,
  };
}

function registerRelayMetrics(
  registry: Registry,
  scope: RelayScope,
  state: RelayState,
  links: Map<string, UpstreamLink>,
  hub: () => { count(environment?: string): number },
): void {
  const STATES = ['connecting', 'connected', 'disconnected', 'refused'] as const;
  new Gauge({
    name: 'aviary_relay_upstream_connected',
    help: 'Relay: the upstream stream of each environment, by state (1 for the current state).',
    labelNames: ['environment', 'state'] as const,
    registers: [registry],
    collect() {
      for (const env of scope.environments) for (const s of STATES) this.set({ environment: env, state: s }, links.get(env)?.state === s ? 1 : 0);
    },
  });
  new Gauge({
    name: 'aviary_relay_version',
    help: 'Relay: the environment version it serves.',
    labelNames: ['environment'] as const,
    registers: [registry],
    collect() {
      for (const env of scope.environments) this.set({ environment: env }, state.version(env) ?? -1);
    },
  });
  new Gauge({
    name: 'aviary_relay_lag_versions',
    help: 'Relay: versions upstream announced that it has not applied yet.',
    labelNames: ['environment'] as const,
    registers: [registry],
    collect() {
      for (const env of scope.environments) this.set({ environment: env }, links.get(env)?.lag().versions ?? 0);
    },
  });
  new Gauge({
    name: 'aviary_relay_lag_seconds',
    help: 'Relay: how long it has been behind the newest version upstream announced (0 when current).',
    labelNames: ['environment'] as const,
    registers: [registry],
    collect() {
      for (const env of scope.environments) this.set({ environment: env }, (links.get(env)?.lag().ms ?? 0) / 1000);
    },
  });
  new Gauge({
    name: 'aviary_relay_upstream_messages',
    help: 'Relay: what its upstream streams delivered since it started, by kind (hydrate: a whole snapshot; resume: a reconnect answered with only what it missed; delta).',
    labelNames: ['environment', 'kind'] as const,
    registers: [registry],
    collect() {
      for (const env of scope.environments) {
        const st = links.get(env)?.stats;
        this.set({ environment: env, kind: 'hydrate' }, st?.hydrates ?? 0);
        this.set({ environment: env, kind: 'resume' }, st?.resumes ?? 0);
        this.set({ environment: env, kind: 'delta' }, st?.deltas ?? 0);
      }
    },
  });
  new Gauge({
    name: 'aviary_relay_connected_sdks',
    help: 'Relay: streams connected to it, per environment.',
    labelNames: ['environment'] as const,
    registers: [registry],
    collect() {
      for (const env of scope.environments) this.set({ environment: env }, hub().count(env));
    },
  });
}
