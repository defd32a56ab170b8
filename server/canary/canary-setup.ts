/**
 * Wires the canary runtime into an app: decorates `app.canaries`, starts its timer when the server is ready and
 * stops it before close. Canaries that were running when the server stopped continue from their stored clocks.
 * The guard runs only while this replica owns the `canary-guard` duty (`app.duties`); the timer keeps ticking on
 * every replica so that a replica taking the duty over starts guarding within a tick.
 */
import type { FastifyInstance } from 'fastify';
import { CanaryService, type FlagStateMutator } from './canary-service.js';
import { EvidenceStore } from './evidence-store.js';

/** Canary options of buildApp. */
export interface CanaryOptions {
  /** How often the guard checks holds and hand edits (ms). Default 1,000. */
  tickMs?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    canaries: CanaryService;
  }
}

/**
 * Decorates `app.canaries`. Needs `app.store`, `app.writer`, `app.duties`, `app.metrics` (setupMetrics) and the flag
 * store. Call before registering routes.
 */
export function setupCanaries(app: FastifyInstance, flags: FlagStateMutator, options: CanaryOptions = {}): CanaryService {
  // Ingest records the guard's evidence for canary flags in its own batch transaction (exactly once per report).
  const evidence = new EvidenceStore(app.store, app.metrics.instruments);
  app.metrics.ingester.evidence = evidence;
  const service = new CanaryService({
    store: app.store,
    writer: app.writer,
    duties: app.duties,
    flags,
    metrics: app.metrics.store,
    evidence,
    now: app.now,
    instruments: app.metrics.instruments,
    log: app.log,
    ...(options.tickMs ? { tickMs: options.tickMs } : {}),
  });
  app.decorate('canaries', service);
  app.addHook('onReady', async () => service.start());
  app.addHook('preClose', async () => service.stop());
  return service;
}
