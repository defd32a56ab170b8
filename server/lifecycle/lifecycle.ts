/**
 * A flag's lifecycle in one environment (CONTRACT §15), from what SDKs reported (`flag_usage`, kept at metrics
 * ingest: server/lifecycle/usage-store.ts). A pure function of the usage rows, when the state came to be, and the
 * clock, so the API, the console, the Prometheus gauge and the tests agree.
 *
 * - `new`: the state exists for less than the window (7 days) and was never evaluated;
 * - `inactive`: not evaluated in the window (never evaluated and older than the window, or last evaluated before it);
 * - `launched`: evaluated in the window, but every evaluation in the window served the same variant, AND the flag was
 *   first evaluated at least a window ago (a flag first evaluated 3 days ago cannot have served one variant "for the
 *   last 7 days" yet: it is `active`). The caller's default (variant `''`: unknown flag, wrong type, not ready,
 *   malformed) counts as a value of its own: a flag that served `on` to some contexts and the code's default to others
 *   in the window did not serve a single variant to every context, and one that served only the caller's default is
 *   not launched either (there is no variant of the flag to keep in code): both are `active`.
 * - `active`: evaluated in the window, and not `launched`.
 *
 * Usage times are those of the evaluations a report covers (its per-minute rows, bounded by the clock-skew window),
 * not when the report arrived.
 */

/** The window of every status: 7 days. */
export const LIFECYCLE_WINDOW_MS = 7 * 86_400_000;

export type LifecycleStatus = 'new' | 'active' | 'launched' | 'inactive';
export const LIFECYCLE_STATUSES: readonly LifecycleStatus[] = ['new', 'active', 'launched', 'inactive'];

/** What SDKs reported of one variant of a flag in an environment (`''`: the caller's default). */
export interface VariantUsage {
  variant: string;
  /** Epoch ms. */
  firstEvaluatedAt: number;
  lastEvaluatedAt: number;
  evaluations: number;
}

/** The lifecycle of a flag state (times in epoch ms; the API renders them as RFC 3339). */
export interface Lifecycle {
  status: LifecycleStatus;
  /** The latest evaluation any SDK reported, or null. */
  lastEvaluatedAt: number | null;
  /** The first evaluation any SDK reported, or null. */
  firstEvaluatedAt: number | null;
  /** `launched` only: the one variant served in the window. */
  variant?: string;
  /** `launched` only: since when that variant alone has been served (the last evaluation of any other value, or the first evaluation). */
  since?: number;
}

/**
 * The lifecycle of a state that exists since `createdAt` (epoch ms: the later of the flag's and the environment's
 * creation) with `usage`, at `now`.
 */
export function lifecycleOf(createdAt: number, usage: readonly VariantUsage[], now: number, windowMs = LIFECYCLE_WINDOW_MS): Lifecycle {
  const used = usage.filter((u) => u.evaluations > 0);
  if (used.length === 0) return { status: now - createdAt < windowMs ? 'new' : 'inactive', lastEvaluatedAt: null, firstEvaluatedAt: null };
  let first = Infinity;
  let last = -Infinity;
  for (const u of used) {
    first = Math.min(first, u.firstEvaluatedAt);
    last = Math.max(last, u.lastEvaluatedAt);
  }
  const base = { lastEvaluatedAt: last, firstEvaluatedAt: first };
  const windowStart = now - windowMs;
  if (last <= windowStart) return { status: 'inactive', ...base };
  const recent = used.filter((u) => u.lastEvaluatedAt > windowStart);
  const only = recent.length === 1 ? recent[0]! : null;
  if (only && only.variant !== '' && first <= windowStart) {
    let since = only.firstEvaluatedAt;
    for (const u of used) if (u !== only) since = Math.max(since, u.lastEvaluatedAt);
    return { status: 'launched', ...base, variant: only.variant, since };
  }
  return { status: 'active', ...base };
}
