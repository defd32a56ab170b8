/**
 * Persistence of canary runs in the `canaries` table. A run is stored whole after every transition, so a restarted
 * server resumes it from the stored timestamps: the hold clock (`stage_started_at`, `paused_at`) and the guard's
 * window (kept with the last verdict in `last_decision`, as `{ verdict, windowStartedAt, reference }`).
 */
import type { SparseHistogram } from '@aviary/sdk/core';
import type { CanaryDocument } from './document.js';
import type { Sql, StorePort } from '../storage/port.js';
import type { RowOf } from '../storage/rows.js';
import type { canaries } from '../storage/schema.js';
import type { CanaryRun, GuardVerdict } from './state-machine.js';

type CanaryRow = RowOf<typeof canaries>;

interface StoredDecision {
  verdict: GuardVerdict | null;
  windowStartedAt: number;
  /** The tail test's frozen reference histogram (absent in runs stored before it was frozen). */
  reference?: SparseHistogram | null;
}

function fromRow(row: CanaryRow): CanaryRun {
  const decision = row.last_decision ? (JSON.parse(row.last_decision) as Partial<StoredDecision>) : {};
  return {
    document: JSON.parse(row.document) as CanaryDocument,
    state: row.state,
    stage: Number(row.stage_index),
    stageStartedAt: Number(row.stage_started_at),
    windowStartedAt: decision.windowStartedAt ?? Number(row.stage_started_at),
    pausedAt: row.paused_at === null ? null : Number(row.paused_at),
    startedAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    lastDecision: decision.verdict ?? null,
    ...(decision.reference !== undefined ? { reference: decision.reference } : {}),
  };
}

const SQL = {
  get: 'SELECT * FROM canaries WHERE environment = ? AND flag = ?',
  active: "SELECT * FROM canaries WHERE state IN ('running', 'paused') ORDER BY environment, flag",
  upsert: `INSERT INTO canaries (environment, flag, document, state, stage_index, stage_started_at, paused_at, last_decision, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (environment, flag) DO UPDATE SET document = excluded.document, state = excluded.state,
      stage_index = excluded.stage_index, stage_started_at = excluded.stage_started_at, paused_at = excluded.paused_at,
      last_decision = excluded.last_decision, created_at = excluded.created_at, updated_at = excluded.updated_at`,
  delete: 'DELETE FROM canaries WHERE environment = ? AND flag = ?',
};

/** Canary runs; every method reads or writes through `sql` (a transaction's statements, or the store itself). */
export class CanaryStore {
  constructor(private readonly store: StorePort) {}

  async get(environment: string, flag: string, sql: Sql = this.store): Promise<CanaryRun | null> {
    const row = await sql.get<CanaryRow>(SQL.get, [environment, flag]);
    return row ? fromRow(row) : null;
  }

  /** Running and paused canaries (what the scheduler watches, and what ingest records evidence for). */
  async active(sql: Sql = this.store): Promise<Array<{ environment: string; flag: string; run: CanaryRun }>> {
    return (await sql.all<CanaryRow>(SQL.active)).map((row) => ({ environment: row.environment, flag: row.flag, run: fromRow(row) }));
  }

  /** Stores the run (call with the write transaction that applies its flag state). */
  async save(sql: Sql, environment: string, flag: string, run: CanaryRun): Promise<void> {
    const decision: StoredDecision = {
      verdict: run.lastDecision,
      windowStartedAt: run.windowStartedAt,
      ...(run.reference !== undefined ? { reference: run.reference } : {}),
    };
    await sql.run(SQL.upsert, [
      environment,
      flag,
      JSON.stringify(run.document),
      run.state,
      run.stage,
      run.stageStartedAt,
      run.pausedAt,
      JSON.stringify(decision),
      run.startedAt,
      run.updatedAt,
    ]);
  }

  async delete(sql: Sql, environment: string, flag: string): Promise<boolean> {
    return (await sql.run(SQL.delete, [environment, flag])) > 0;
  }
}
