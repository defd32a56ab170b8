/**
 * `flag_usage`: per environment, flag and variant, the first and last evaluation SDKs reported and how many. Kept by
 * metrics ingest (`recordUsage`, inside the batch's transaction: counted exactly once with the report) and never
 * pruned by metrics retention; read here for the lifecycle of flag states (lifecycle.ts).
 */
import type { SqlValue, Sql, Tx } from '../storage/port.js';
import { chunked, flat, valuesList } from '../metrics/sql-lists.js';
import { apiTime } from '../openapi/time.js';
import { lifecycleOf, type Lifecycle, type VariantUsage } from './lifecycle.js';

const MINUTE = 60_000;

/** One per-minute row a fresh report brought (the ingester's accumulated rows). */
export interface UsageInput {
  environment: string;
  flag: string;
  variant: string;
  minute: number;
  evaluations: number;
}

/**
 * Upserts one `flag_usage` row per (environment, flag, variant) of the batch: the first evaluation is the earliest
 * minute's start, the last the latest minute's end, both bounded by `now` (a minute the clock-skew window let in
 * ahead of the server's clock counts as now); counts are added. A handful of rows per statement, in the ingest
 * transaction.
 */
export async function recordUsage(tx: Tx, rows: Iterable<UsageInput>, now: number): Promise<void> {
  const acc = new Map<string, SqlValue[]>();
  for (const r of rows) {
    if (r.evaluations <= 0) continue;
    const first = Math.min(r.minute, now);
    const last = Math.min(r.minute + MINUTE - 1, now);
    const key = `${r.environment}\u0000${r.flag}\u0000${r.variant}`;
    const a = acc.get(key);
    if (!a) acc.set(key, [r.environment, r.flag, r.variant, first, last, r.evaluations]);
    else {
      a[3] = Math.min(a[3] as number, first);
      a[4] = Math.max(a[4] as number, last);
      a[5] = (a[5] as number) + r.evaluations;
    }
  }
  for (const chunk of chunked([...acc.values()])) {
    await tx.run(
      `INSERT INTO flag_usage (environment, flag, variant, first_evaluated_at, last_evaluated_at, evaluations) VALUES ${valuesList(6, chunk.length)}
       ON CONFLICT (environment, flag, variant) DO UPDATE SET
         first_evaluated_at = CASE WHEN excluded.first_evaluated_at < flag_usage.first_evaluated_at THEN excluded.first_evaluated_at ELSE flag_usage.first_evaluated_at END,
         last_evaluated_at = CASE WHEN excluded.last_evaluated_at > flag_usage.last_evaluated_at THEN excluded.last_evaluated_at ELSE flag_usage.last_evaluated_at END,
         evaluations = flag_usage.evaluations + excluded.evaluations`,
      flat(chunk),
    );
  }
}

interface UsageRow {
  environment: string;
  flag: string;
  variant: string;
  first_evaluated_at: number | string;
  last_evaluated_at: number | string;
  evaluations: number | string;
}

/** Usage by environment, then flag. */
export type UsageIndex = Map<string, Map<string, VariantUsage[]>>;

/** Reads usage: of one flag, of one environment, or all of it. */
export async function readUsage(sql: Sql, filter: { flag?: string; environment?: string } = {}): Promise<UsageIndex> {
  const where: string[] = [];
  const params: SqlValue[] = [];
  if (filter.flag !== undefined) {
    where.push('flag = ?');
    params.push(filter.flag);
  }
  if (filter.environment !== undefined) {
    where.push('environment = ?');
    params.push(filter.environment);
  }
  const rows = await sql.all<UsageRow>(
    `SELECT environment, flag, variant, first_evaluated_at, last_evaluated_at, evaluations FROM flag_usage${where.length ? ` WHERE ${where.join(' AND ')}` : ''}`,
    params,
  );
  const out: UsageIndex = new Map();
  for (const r of rows) {
    let env = out.get(r.environment);
    if (!env) out.set(r.environment, (env = new Map()));
    let list = env.get(r.flag);
    if (!list) env.set(r.flag, (list = []));
    list.push({
      variant: r.variant,
      firstEvaluatedAt: Number(r.first_evaluated_at),
      lastEvaluatedAt: Number(r.last_evaluated_at),
      evaluations: Number(r.evaluations),
    });
  }
  return out;
}

/** When each environment was created (epoch ms). */
export async function environmentsCreated(sql: Sql): Promise<Map<string, number>> {
  const rows = await sql.all<{ key: string; created_at: number | string }>('SELECT key, created_at FROM environments');
  return new Map(rows.map((r) => [r.key, Number(r.created_at)]));
}

/** The lifecycle as the admin API shows it (times RFC 3339). */
export interface LifecycleResource {
  status: Lifecycle['status'];
  lastEvaluatedAt: string | null;
  firstEvaluatedAt: string | null;
  variant?: string;
  since?: string;
}

const iso = (t: number | null) => (t === null ? null : apiTime(t));

export function lifecycleResource(l: Lifecycle): LifecycleResource {
  return {
    status: l.status,
    lastEvaluatedAt: iso(l.lastEvaluatedAt),
    firstEvaluatedAt: iso(l.firstEvaluatedAt),
    ...(l.variant !== undefined ? { variant: l.variant } : {}),
    ...(l.since !== undefined ? { since: apiTime(l.since) } : {}),
  };
}

/** The lifecycle of `flag` (created at `flagCreatedAt`) in `environment`. */
export function stateLifecycle(
  usage: UsageIndex,
  envCreated: Map<string, number>,
  environment: string,
  flag: string,
  flagCreatedAt: number,
  now: number,
): Lifecycle {
  const created = Math.max(flagCreatedAt, envCreated.get(environment) ?? 0);
  return lifecycleOf(created, usage.get(environment)?.get(flag) ?? [], now);
}
