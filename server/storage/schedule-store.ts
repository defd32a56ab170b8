/**
 * Scheduled changes (CONTRACT §11): a kill, a revive or a whole new state, stored in `schedules` and run once at its
 * time by the replica that owns the `schedules` duty (server/schedules/schedule-runner.ts). The table is the truth:
 * timers only decide when to look at it, and every transition (create, cancel, run, fail) is one write through the
 * Writer that re-reads the row and acts only while it is still `pending`, so a schedule runs at most once whatever
 * races it (a cancel, another replica, a restart).
 *
 * A run applies its action with `FlagStateStore.mutateState` as actor `schedule:<id>` (the flag-state change is
 * audited as the schedule's, and streamed like any change) and marks the row `done` in the same transaction. When the
 * action is refused (the state no longer validates, the flag was archived), that transaction rolls back and the
 * schedule is marked `failed` with the reason in a write of its own, audited too.
 */
import { randomUUID } from 'node:crypto';
import type { FlagState } from '@aviary/sdk/core';
import { apiTime, apiTimeOrNull } from '../openapi/time.js';
import { validateFlagState } from './core-api.js';
import {
  definitionOf,
  prerequisiteFlags,
  segmentKeys,
  stripReadOnly,
  type FlagStateResource,
  type FlagStateStore,
  type StateMutation,
} from './flag-state-store.js';
import { bool, type Sql, type StorePort } from './port.js';
import type { FlagRow, RowOf } from './rows.js';
import type * as schema from './schema.js';
import type { StoredFlagState } from './schema.js';
import { conflict, invalid, notFound, StoreError } from './store-errors.js';
import type { Actor, WriteContext, Writer } from './writer.js';

export type ScheduleRow = RowOf<typeof schema.schedules>;
export type ScheduleAction = ScheduleRow['action'];
export type ScheduleStatus = ScheduleRow['status'];

/** A schedule as the admin API shows it. */
export interface ScheduleResource {
  id: string;
  flag: string;
  environment: string;
  at: string;
  action: ScheduleAction;
  /** For `state`: the state it writes (validated when scheduled); null otherwise. */
  state: StoredFlagState | null;
  reason: string | null;
  status: ScheduleStatus;
  /** Why it failed (`failed` only). */
  error: string | null;
  author: Actor;
  createdAt: string;
  updatedAt: string;
  ranAt: string | null;
}

/** What `create` takes (the route has checked shapes against the OpenAPI schema; times already in epoch ms). */
export interface ScheduleInput {
  at: number;
  action: ScheduleAction;
  state?: unknown;
  reason?: string | null;
}

/** How far in the past `at` may be when scheduling (a client whose clock runs slightly ahead schedules "now"). */
export const PAST_GRACE_MS = 60_000;
/** A run later than this after its `at` is audited as late (the server was down, or busy, at its time). */
export const LATE_AFTER_MS = 5_000;

/** The outcome of one attempt to run a schedule. */
export type RunOutcome =
  | { outcome: 'done'; schedule: ScheduleResource; lateMs: number; changed: boolean }
  | { outcome: 'failed'; schedule: ScheduleResource; error: string }
  /** No longer pending (ran elsewhere, cancelled) or gone (its flag was deleted): nothing was done. */
  | { outcome: 'skipped' };

const SQL = {
  flag: 'SELECT * FROM flags WHERE key = ?',
  envExists: 'SELECT key FROM environments WHERE key = ?',
  requiresApproval: 'SELECT require_approval FROM environments WHERE key = ?',
  get: 'SELECT * FROM schedules WHERE id = ?',
  list: 'SELECT * FROM schedules WHERE environment = ? AND flag = ? ORDER BY at, id',
  listStatus: 'SELECT * FROM schedules WHERE environment = ? AND flag = ? AND status = ? ORDER BY at, id',
  insert: `INSERT INTO schedules (id, environment, flag, at, action, state, reason, status, error, author_token_id, author_name, created_at, updated_at, ran_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', NULL, ?, ?, ?, ?, NULL)`,
  finish: "UPDATE schedules SET status = ?, error = ?, ran_at = ?, updated_at = ? WHERE id = ? AND status = 'pending'",
  cancel: "UPDATE schedules SET status = 'cancelled', updated_at = ? WHERE id = ? AND status = 'pending'",
  due: "SELECT id FROM schedules WHERE status = 'pending' AND at <= ? ORDER BY at, id LIMIT ?",
  next: "SELECT min(at) AS at FROM schedules WHERE status = 'pending'",
};

export class ScheduleStore {
  constructor(
    private readonly store: StorePort,
    private readonly writer: Writer,
    private readonly states: FlagStateStore,
  ) {}

  private async requiresApproval(sql: Sql, environment: string): Promise<boolean> {
    const row = await sql.get<{ require_approval: number | boolean }>(SQL.requiresApproval, [environment]);
    return row !== undefined && bool(row.require_approval);
  }

  /** Creates a pending schedule (audited `schedule.create`). 404 unknown flag or environment; invalid input named by path. */
  async create(actor: Actor, environment: string, flag: string, input: ScheduleInput): Promise<ScheduleResource> {
    const { value } = await this.writer.write(actor, async (w) => {
      const flagRow = await w.tx.get<FlagRow>(SQL.flag, [flag]);
      if (!flagRow) throw notFound(`No flag "${flag}".`);
      if (!(await w.tx.get(SQL.envExists, [environment]))) throw notFound(`No environment "${environment}".`);
      if (!Number.isFinite(input.at)) throw invalid([{ path: '/at', message: 'is not a time' }]);
      if (input.at < w.now - PAST_GRACE_MS)
        throw invalid([{ path: '/at', message: `is in the past (${apiTime(input.at)}; at most ${PAST_GRACE_MS / 1000} s before now)` }]);
      let state: StoredFlagState | null = null;
      if (input.action === 'state') {
        // A scheduled state would skip the environment's approval: state changes there go through change requests.
        // (Kill and revive are never held, scheduled or not.)
        if (await this.requiresApproval(w.tx, environment)) throw approvalRequired(environment);
        if (input.state === undefined) throw invalid([{ path: '/state', message: 'is required when action is "state"' }]);
        const body = stripReadOnly(input.state);
        if (body && typeof body === 'object' && 'reason' in body)
          throw invalid([{ path: '/state/reason', message: "is not part of a state: give the schedule's reason instead" }]);
        // Prerequisites are checked against the environment's flags now, as a PUT would (and again when it runs).
        const prerequisites =
          typeof body === 'object' && body !== null && 'prerequisites' in body ? await prerequisiteFlags(w.tx, environment) : undefined;
        const v = validateFlagState(body, definitionOf(flagRow), await segmentKeys(w.tx), prerequisites);
        if (!v.ok) throw invalid(v.issues.map((i) => ({ path: `/state${i.path}`, message: i.message })));
        state = v.value;
      } else if (input.state !== undefined) {
        throw invalid([{ path: '/state', message: `is only for action "state", not "${input.action}"` }]);
      }
      const id = randomUUID();
      await w.tx.run(SQL.insert, [
        id,
        environment,
        flag,
        input.at,
        input.action,
        state === null ? null : JSON.stringify(state),
        input.reason ?? null,
        actor.tokenId,
        actor.name,
        w.now,
        w.now,
      ]);
      const created = resourceOf((await w.tx.get<ScheduleRow>(SQL.get, [id]))!);
      w.audit({
        action: 'schedule.create',
        resourceType: 'flag',
        resourceKey: flag,
        environment,
        after: audited(created),
        reason: input.reason ?? null,
      });
      return created;
    });
    return value;
  }

  /** The flag's schedules in the environment, soonest first (404 unknown flag or environment). */
  async list(environment: string, flag: string, status?: ScheduleStatus): Promise<ScheduleResource[]> {
    await this.requireFlagEnv(this.store, environment, flag);
    const rows = status
      ? await this.store.all<ScheduleRow>(SQL.listStatus, [environment, flag, status])
      : await this.store.all<ScheduleRow>(SQL.list, [environment, flag]);
    return rows.map(resourceOf);
  }

  /** One schedule of the flag in the environment, or null. */
  async get(environment: string, flag: string, id: string): Promise<ScheduleResource | null> {
    const row = await this.store.get<ScheduleRow>(SQL.get, [id]);
    return row && row.environment === environment && row.flag === flag ? resourceOf(row) : null;
  }

  /** Cancels a pending schedule (audited `schedule.cancel`); conflict when it is no longer pending. */
  async cancel(actor: Actor, environment: string, flag: string, id: string, reason: string | null = null): Promise<ScheduleResource> {
    const { value } = await this.writer.write(actor, async (w) => {
      const row = await w.tx.get<ScheduleRow>(SQL.get, [id]);
      if (!row || row.environment !== environment || row.flag !== flag) throw notFound(`No schedule "${id}" of "${flag}" in "${environment}".`);
      if (row.status !== 'pending') throw conflict(`Schedule "${id}" is ${row.status}; only a pending schedule can be cancelled.`);
      await w.tx.run(SQL.cancel, [w.now, id]);
      const after = resourceOf((await w.tx.get<ScheduleRow>(SQL.get, [id]))!);
      w.audit({
        action: 'schedule.cancel',
        resourceType: 'flag',
        resourceKey: flag,
        environment,
        before: audited(resourceOf(row)),
        after: audited(after),
        reason,
      });
      return after;
    });
    return value;
  }

  /** Ids of pending schedules due at `now`, oldest first. */
  async due(now: number, limit = 100): Promise<string[]> {
    return (await this.store.all<{ id: string }>(SQL.due, [now, limit])).map((r) => r.id);
  }

  /** The earliest `at` of a pending schedule (epoch ms), or null. */
  async nextAt(): Promise<number | null> {
    const row = await this.store.get<{ at: number | string | null }>(SQL.next);
    return row?.at === null || row?.at === undefined ? null : Number(row.at);
  }

  /**
   * Runs one schedule: in one write, `guard` (the runner's fence), then the row re-read (nothing unless still pending
   * and due), the action through `mutateState` as `schedule:<id>`, and the row marked done. If the action is refused
   * (a `StoreError`: the state no longer validates, the flag is archived), that write rolls back and a second one
   * (fenced too) marks the schedule failed with the reason. Any other error (lease lost, database away) is thrown and
   * the schedule stays pending for the next attempt.
   */
  async run(id: string, guard: (w: WriteContext) => Promise<void>): Promise<RunOutcome> {
    const actor: Actor = { tokenId: null, name: `schedule:${id}`, kind: 'schedule' };
    try {
      const { value } = await this.writer.write(actor, async (w): Promise<RunOutcome> => {
        await guard(w);
        const row = await w.tx.get<ScheduleRow>(SQL.get, [id]);
        if (row?.status !== 'pending' || Number(row.at) > w.now) return { outcome: 'skipped' };
        const at = Number(row.at);
        const lateMs = Math.max(0, w.now - at);
        const late = lateMs > LATE_AFTER_MS;
        const why = row.reason ?? `scheduled ${row.action} (${id})`;
        // Approval was turned on after the schedule was made: its state is not applied without one.
        if (row.action === 'state' && (await this.requiresApproval(w.tx, row.environment))) throw approvalRequired(row.environment);
        const result = await this.states.mutateState(
          w,
          row.environment,
          row.flag,
          mutationOf(row),
          late ? `${why} (late by ${formatMs(lateMs)})` : why,
          {
            action: actionOf(row.action),
          },
        );
        await w.tx.run(SQL.finish, ['done', null, w.now, w.now, id]);
        const after = resourceOf((await w.tx.get<ScheduleRow>(SQL.get, [id]))!);
        w.audit({
          action: 'schedule.run',
          resourceType: 'flag',
          resourceKey: row.flag,
          environment: row.environment,
          before: audited(resourceOf(row)),
          after: { ...audited(after), changed: result.changed, lateMs, late },
          reason: late ? `ran late by ${formatMs(lateMs)}: no server ran the schedules at their time` : row.reason,
        });
        return { outcome: 'done', schedule: after, lateMs, changed: result.changed };
      });
      return value;
    } catch (err) {
      if (!(err instanceof StoreError)) throw err;
      return this.fail(id, actor, err, guard);
    }
  }

  private async fail(id: string, actor: Actor, err: StoreError, guard: (w: WriteContext) => Promise<void>): Promise<RunOutcome> {
    const error = err.issues.length ? err.issues.map((i) => `${i.path || '/'}: ${i.message}`).join('; ') : err.message;
    const { value } = await this.writer.write(actor, async (w): Promise<RunOutcome> => {
      await guard(w);
      const row = await w.tx.get<ScheduleRow>(SQL.get, [id]);
      if (row?.status !== 'pending') return { outcome: 'skipped' };
      await w.tx.run(SQL.finish, ['failed', error, w.now, w.now, id]);
      const after = resourceOf((await w.tx.get<ScheduleRow>(SQL.get, [id]))!);
      w.audit({
        action: 'schedule.fail',
        resourceType: 'flag',
        resourceKey: row.flag,
        environment: row.environment,
        before: audited(resourceOf(row)),
        after: { ...audited(after), lateMs: Math.max(0, w.now - Number(row.at)) },
        reason: error,
      });
      return { outcome: 'failed', schedule: after, error };
    });
    return value;
  }

  private async requireFlagEnv(sql: Sql, environment: string, flag: string): Promise<void> {
    if (!(await sql.get(SQL.flag, [flag]))) throw notFound(`No flag "${flag}".`);
    if (!(await sql.get(SQL.envExists, [environment]))) throw notFound(`No environment "${environment}".`);
  }
}

/** The mutation a schedule applies: the same as the kill and revive switches and a PUT of the state. */
function mutationOf(row: ScheduleRow): StateMutation {
  const reason = row.reason;
  switch (row.action) {
    case 'kill':
      return (cur, now) => (cur.enabled ? { state: { ...storedOf(cur), enabled: false }, killedAt: now, killReason: reason } : null);
    case 'revive':
      return (cur) => (cur.enabled ? null : { state: { ...storedOf(cur), enabled: true }, killedAt: null, killReason: null, panicSavedState: null });
    case 'state': {
      const state = JSON.parse(row.state ?? 'null') as StoredFlagState;
      // As a PUT: turning a killed flag on ends the kill, and the state takes over from a panic hold.
      return (cur) => ({ state, ...(state.enabled || cur.enabled ? { killedAt: null, killReason: null } : {}), panicSavedState: null });
    }
  }
}

function actionOf(action: ScheduleAction): string {
  return action === 'kill' ? 'flag.kill' : action === 'revive' ? 'flag.revive' : 'flag-state.update';
}

/** The stored part of a state resource (whatever members the state has, without the bookkeeping). */
function storedOf(s: FlagStateResource): StoredFlagState {
  const {
    version: _v,
    flag: _f,
    environment: _e,
    killedAt: _k,
    killReason: _r,
    panicked: _p,
    updatedAt: _u,
    ...stored
  } = s as FlagStateResource & FlagState;
  return stored as StoredFlagState;
}

export function resourceOf(row: ScheduleRow): ScheduleResource {
  return {
    id: row.id,
    flag: row.flag,
    environment: row.environment,
    at: apiTime(Number(row.at)),
    action: row.action,
    state: row.state === null ? null : (JSON.parse(row.state) as StoredFlagState),
    reason: row.reason,
    status: row.status,
    error: row.error,
    author: { tokenId: row.author_token_id, name: row.author_name },
    createdAt: apiTime(Number(row.created_at)),
    updatedAt: apiTime(Number(row.updated_at)),
    ranAt: apiTimeOrNull(row.ran_at === null ? null : Number(row.ran_at)),
  };
}

function audited(s: ScheduleResource): Record<string, unknown> {
  return { ...s };
}

function formatMs(ms: number): string {
  return ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : ms < 7_200_000 ? `${(ms / 60_000).toFixed(1)} min` : `${(ms / 3_600_000).toFixed(1)} h`;
}

/** A state change scheduled in an environment that requires approval (CONTRACT §11: state changes there are held). */
function approvalRequired(environment: string): StoreError {
  return new StoreError(
    'conflict',
    `Environment "${environment}" requires approval for state changes: propose the state as a change request (PUT the state) instead of scheduling it. Scheduled kills and revives are never held.`,
  );
}
