/**
 * The lifecycle gauge: `aviary_flag_lifecycle{environment,status}`, the number of live (not archived) flags per
 * environment in each lifecycle status, computed at scrape time from the database (flags, states, `flag_usage`) on
 * the app's clock, so it needs no bookkeeping and agrees with the API. Every status of every environment is set (0
 * rather than absent), so dashboards and alerts see a status empty out.
 */
import type { FastifyInstance } from 'fastify';
import { Gauge } from 'prom-client';
import { bool } from '../storage/port.js';
import { LIFECYCLE_STATUSES } from './lifecycle.js';
import { environmentsCreated, readUsage, stateLifecycle } from './usage-store.js';

export function setupLifecycle(app: FastifyInstance): void {
  new Gauge({
    name: 'aviary_flag_lifecycle',
    help: 'Live flags per environment by lifecycle status (new, active, launched, inactive), from what SDKs reported over 7 days.',
    labelNames: ['environment', 'status'] as const,
    registers: [app.prometheus.registry],
    async collect() {
      const [states, usage, envCreated] = await Promise.all([
        app.store.all<{ flag: string; environment: string; created_at: number | string; archived: number | boolean }>(
          'SELECT s.flag, s.environment, f.created_at, f.archived FROM flag_states s JOIN flags f ON f.key = s.flag',
        ),
        readUsage(app.store),
        environmentsCreated(app.store),
      ]);
      const now = app.now();
      const counts = new Map<string, Record<string, number>>();
      for (const env of envCreated.keys()) counts.set(env, Object.fromEntries(LIFECYCLE_STATUSES.map((s) => [s, 0])));
      for (const s of states) {
        if (bool(s.archived)) continue;
        const c = counts.get(s.environment);
        if (!c) continue;
        c[stateLifecycle(usage, envCreated, s.environment, s.flag, Number(s.created_at), now).status]!++;
      }
      this.reset();
      for (const [environment, c] of counts) for (const [status, n] of Object.entries(c)) this.set({ environment, status }, n);
    },
  });
}
