/**
 * Persistence of canary runs in the `canaries` table. A run is stored whole after every transition, so a restarted
 * server resumes it from the stored timestamps: the hold clock (`stage_started_at`, `paused_at`) and the guard's
 * window (kept with the last verdict in `last_decision`, as `{ verdict, windowStartedAt, reference }`).
 */
import type Database from 'better-sqlite3';
import type { SparseHistogram } from '@aviary/sdk/core';
import type { CanaryDocument } from './document.js';
import type { CanaryRun, CanaryState, GuardVerdict } from './state-machine.js';

interface CanaryRow {
  environment: string;
  flag: string;
  document: string;
  state: CanaryState;
  stage_index: number;
  stage_started_at: number;
  paused_at: number | null;
  last_decision: string | null;
  created_at: number;
  updated_at: number;
}

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
    stage: row.stage_index,
    stageStartedAt: row.stage_started_at,
    windowStartedAt: decision.windowStartedAt ?? row.stage_started_at,
    pausedAt: row.paused_at,
    startedAt: row.created_at,
    updatedAt: row.updated_at,
    lastDecision: decision.verdict ?? null,
    ...(decision.reference !== undefined ? { reference: decision.reference } : {}),
  };
}

export class CanaryStore {
  private readonly stmts;

  constructor(sqlite: Database.Database) {
    this.stmts = {
      get: sqlite.prepare<[string, string], CanaryRow>('SELECT * FROM canaries WHERE environment = ? AND flag = ?'),
      active: sqlite.prepare<[], CanaryRow>("SELECT * FROM canaries WHERE state IN ('running', 'paused') ORDER BY environment, flag"),
      upsert: sqlite.prepare(
        `INSERT INTO canaries (environment, flag, document, state, stage_index, stage_started_at, paused_at, last_decision, created_at, updated_at)
         VALUES (@environment, @flag, @document, @state, @stage, @stageStartedAt, @pausedAt, @lastDecision, @startedAt, @updatedAt)
         ON CONFLICT (environment, flag) DO UPDATE SET document = excluded.document, state = excluded.state,
           stage_index = excluded.stage_index, stage_started_at = excluded.stage_started_at, paused_at = excluded.paused_at,
           last_decision = excluded.last_decision, created_at = excluded.created_at, updated_at = excluded.updated_at`,
      ),
      delete: sqlite.prepare<[string, string]>('DELETE FROM canaries WHERE environment = ? AND flag = ?'),
    };
  }

  get(environment: string, flag: string): CanaryRun | null {
    const row = this.stmts.get.get(environment, flag);
    return row ? fromRow(row) : null;
  }

  /** Running and paused canaries (what the scheduler watches). */
  active(): Array<{ environment: string; flag: string; run: CanaryRun }> {
    return this.stmts.active.all().map((row) => ({ environment: row.environment, flag: row.flag, run: fromRow(row) }));
  }

  /** Stores the run (call inside the write transaction that applies its flag state). */
  save(environment: string, flag: string, run: CanaryRun): void {
    const decision: StoredDecision = {
      verdict: run.lastDecision,
      windowStartedAt: run.windowStartedAt,
      ...(run.reference !== undefined ? { reference: run.reference } : {}),
    };
    this.stmts.upsert.run({
      environment,
      flag,
      document: JSON.stringify(run.document),
      state: run.state,
      stage: run.stage,
      stageStartedAt: run.stageStartedAt,
      pausedAt: run.pausedAt,
      lastDecision: JSON.stringify(decision),
      startedAt: run.startedAt,
      updatedAt: run.updatedAt,
    });
  }

  delete(environment: string, flag: string): boolean {
    return this.stmts.delete.run(environment, flag).changes > 0;
  }
}
