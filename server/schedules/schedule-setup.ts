/**
 * Wires scheduled changes into an app: decorates `app.schedules` (the store and its runner), starts the runner when
 * the server is ready and stops it before close. The runner ticks on every replica and runs schedules only while this
 * replica owns the `schedules` duty, so a replica taking the duty over runs what is due within a tick.
 */
import type { FastifyInstance } from 'fastify';
import type { FlagStateStore } from '../storage/flag-state-store.js';
import { ScheduleStore } from '../storage/schedule-store.js';
import { ScheduleRunner, type ScheduleRunnerOptions } from './schedule-runner.js';

/** Scheduled-change options of buildApp. */
export interface ScheduleOptions {
  /** How often the runner polls the table for due schedules (ms). Default 1,000. */
  pollMs?: number;
  /** Called after each schedule ran or failed (tests). */
  onOutcome?: ScheduleRunnerOptions['onOutcome'];
}

declare module 'fastify' {
  interface FastifyInstance {
    schedules: { store: ScheduleStore; runner: ScheduleRunner };
  }
}

/** Decorates `app.schedules`. Needs `app.store`, `app.writer`, `app.duties`, `app.now`. Call before registering routes. */
export function setupSchedules(app: FastifyInstance, states: FlagStateStore, options: ScheduleOptions = {}): void {
  const store = new ScheduleStore(app.store, app.writer, states);
  const runner = new ScheduleRunner({
    store,
    duties: app.duties,
    now: app.now,
    log: app.log,
    ...(options.pollMs ? { pollMs: options.pollMs } : {}),
    ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
  });
  app.decorate('schedules', { store, runner });
  app.addHook('onReady', async () => runner.start());
  app.addHook('preClose', async () => runner.stop());
}
