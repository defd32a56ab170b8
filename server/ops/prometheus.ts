/**
 * The server's Prometheus metrics (prom-client). Each app gets its own registry rather than prom-client's global
 * one, so several apps in one process (tests, benchmarks) do not collide; other plugins add their own metrics to
 * `app.prometheus.registry`.
 */
import type { EnvironmentSnapshot } from '@aviary/sdk/core';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { RequestMetrics } from './request-metrics.js';

/** The metrics every Aviary server exposes on `/metrics`. */
export interface ServerMetrics {
  registry: Registry;
  /** `aviary_http_requests_total{method,route,status}` and `aviary_http_request_duration_seconds{method,route}`. */
  requests: RequestMetrics;
  /** `aviary_auth_failures_total{scope,reason}`. */
  authFailures: Counter<'scope' | 'reason'>;
  /** `aviary_auth_rate_limited_total`: requests refused because their address failed authentication too often. */
  authRateLimited: Counter;
}

/**
 * Creates the registry and the server's metrics. `snapshots` (this replica's live state) is read at scrape time for `aviary_flags` (flag counts per
 * environment and kill-switch state), so the gauge is always what the database says, with no bookkeeping on writes.
 */
export function createServerMetrics(snapshots: () => EnvironmentSnapshot[]): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'aviary_' });
  const requests = new RequestMetrics(registry, [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]);
  const authFailures = new Counter({
    name: 'aviary_auth_failures_total',
    help: 'Requests that failed token authentication, by API scope and reason.',
    labelNames: ['scope', 'reason'] as const,
    registers: [registry],
  });
  const authRateLimited = new Counter({
    name: 'aviary_auth_rate_limited_total',
    help: 'Requests refused with 429 because their client address failed authentication too often.',
    registers: [registry],
  });
  new Gauge({
    name: 'aviary_flags',
    help: 'Flags (not archived) per environment, by kill-switch state (enabled="false": killed).',
    labelNames: ['environment', 'enabled'] as const,
    registers: [registry],
    collect() {
      this.reset();
      // Environments without flags report 0 rather than vanishing from dashboards.
      for (const snapshot of snapshots()) {
        let enabled = 0;
        for (const f of snapshot.flags) if (f.state.enabled) enabled++;
        this.set({ environment: snapshot.environment, enabled: 'true' }, enabled);
        this.set({ environment: snapshot.environment, enabled: 'false' }, snapshot.flags.length - enabled);
      }
    },
  });
  return { registry, requests, authFailures, authRateLimited };
}
