/**
 * The lifecycle in admin answers (CONTRACT §15): `lifecycle` on each environment of a flag (`GET /api/v1/flags`,
 * `GET /api/v1/flags/{key}`) and on a flag's current state (`GET .../environments/{env}`), computed from `flag_usage`
 * on the app's clock. One read of the usage per request, whatever the number of flags.
 */
import type { FastifyInstance } from 'fastify';
import type { EnvironmentSummary, FlagResource } from '../storage/flag-definition-store.js';
import { environmentsCreated, lifecycleResource, readUsage, stateLifecycle, type LifecycleResource } from './usage-store.js';

/** A flag whose environments carry their lifecycle. */
export type FlagWithLifecycle = FlagResource & { environments: Record<string, EnvironmentSummary & { lifecycle: LifecycleResource }> };

/** `flags` with the lifecycle of each of their states. */
export async function withLifecycle(app: FastifyInstance, flags: FlagResource[]): Promise<FlagWithLifecycle[]> {
  if (flags.length === 0) return [];
  const [usage, envCreated] = await Promise.all([
    readUsage(app.store, flags.length === 1 ? { flag: flags[0]!.key } : {}),
    environmentsCreated(app.store),
  ]);
  const now = app.now();
  return flags.map((f) => {
    const created = Date.parse(f.createdAt);
    const environments: FlagWithLifecycle['environments'] = {};
    for (const [env, summary] of Object.entries(f.environments)) {
      environments[env] = { ...summary, lifecycle: lifecycleResource(stateLifecycle(usage, envCreated, env, f.key, created, now)) };
    }
    return { ...f, environments };
  });
}

/** The lifecycle of `flag`'s state in `environment`. */
export async function lifecycleOfState(app: FastifyInstance, flag: FlagResource, environment: string): Promise<LifecycleResource> {
  const [usage, envCreated] = await Promise.all([readUsage(app.store, { flag: flag.key, environment }), environmentsCreated(app.store)]);
  return lifecycleResource(stateLifecycle(usage, envCreated, environment, flag.key, Date.parse(flag.createdAt), app.now()));
}
