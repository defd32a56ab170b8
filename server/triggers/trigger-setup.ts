/**
 * Wires triggers into an app: decorates `app.triggers` (the store and the per-trigger rate limit). The routes:
 * trigger-routes.ts (admin, `/api/v1/flags/{key}/environments/{env}/triggers`) and hook-routes.ts (public,
 * `/hooks/v1/triggers/{secret}`).
 */
import type { FastifyInstance } from 'fastify';
import type { FlagStateStore } from '../storage/flag-state-store.js';
import { TriggerStore } from '../storage/trigger-store.js';

/** Trigger options of buildApp. */
export interface TriggerOptions {
  /** How many times one trigger may fire per minute; more answer 429 with Retry-After. Default 30. */
  perMinute?: number;
}

/**
 * At most `limit` firings of one trigger per fixed minute. Only triggers that exist are counted (a wrong secret never
 * gets here), so the table is bounded by the number of triggers.
 */
export class TriggerRateLimit {
  private readonly windows = new Map<string, { start: number; count: number }>();
  constructor(
    readonly limit: number,
    readonly windowMs = 60_000,
  ) {}

  /** Counts one firing of `id` at `now`; answers 0 when allowed, else how long (ms) until it would be. */
  take(id: string, now: number): number {
    const w = this.windows.get(id);
    if (!w || now - w.start >= this.windowMs) {
      this.windows.set(id, { start: now, count: 1 });
      return 0;
    }
    if (w.count >= this.limit) return w.start + this.windowMs - now;
    w.count++;
    return 0;
  }

  forget(id: string): void {
    this.windows.delete(id);
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    triggers: { store: TriggerStore; rateLimit: TriggerRateLimit };
  }
}

/** Decorates `app.triggers`. Needs `app.store`, `app.writer`. Call before registering routes. */
export function setupTriggers(app: FastifyInstance, states: FlagStateStore, options: TriggerOptions = {}): void {
  const store = new TriggerStore(app.store, app.writer, states);
  app.decorate('triggers', { store, rateLimit: new TriggerRateLimit(Math.max(1, options.perMinute ?? 30)) });
}
