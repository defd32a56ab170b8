/**
 * The history of a flag's state in each environment (CONTRACT §11): one `flag_state_history` row per version, written
 * in the same transaction as the version itself (`recordVersion`, called by FlagStateStore.mutateState and by the two
 * places that create states: flag create, environment create). Reading: a page of versions newest first, one version,
 * the version current at a time, and a diff of two versions.
 *
 * History is its own table rather than a view of the audit log: the audit log holds the admin JSON of a state (with
 * bookkeeping) only for writes that went through it, knows no version numbers for creations, and is pruned by nobody's
 * promise; a revert needs the exact stored state of a version, found by its key, and `?at=` an index on time.
 */
import type { FlagState, JsonValue } from '@aviary/sdk/core';
import { apiTime } from '../openapi/time.js';
import type { Sql } from './port.js';
import type { RowOf } from './rows.js';
import type * as schema from './schema.js';
import type { StoredFlagState } from './schema.js';
import { toFlagState } from './snapshot.js';
import { stateDiff, type StateChange } from './state-diff.js';
import type { WriteContext } from './writer.js';

type HistoryRow = RowOf<typeof schema.flagStateHistory>;

/** One version of a flag's state in one environment, as the API shows it. */
export interface HistoryEntry {
  version: number;
  /** When this version was written (RFC 3339). */
  at: string;
  actor: { tokenId: string | null; name: string };
  /** The audit action that wrote it (`flag-state.update`, `flag.kill`, `flag-state.revert`, `flag.create`, ...). */
  action: string;
  reason?: string;
  /** The flag state of this version (what SDKs evaluated), its `version` this entry's. */
  state: FlagState;
}

/** A diff of two versions: every changed member as a JSON pointer into the state, with its value before and after. */
export interface HistoryDiff {
  from: HistoryEntry;
  to: HistoryEntry;
  changes: StateChange[];
}

export const encodeHistoryCursor = (version: number) => Buffer.from(`h${version}`).toString('base64url');
export function decodeHistoryCursor(cursor: string): number | null {
  const m = /^h(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return m?.[1] ? Number(m[1]) : null;
}

const SQL = {
  insert: `INSERT INTO flag_state_history (environment, flag, version, state, at, actor_token_id, actor_name, action, reason)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  page: 'SELECT * FROM flag_state_history WHERE environment = ? AND flag = ? AND version < ? ORDER BY version DESC LIMIT ?',
  one: 'SELECT * FROM flag_state_history WHERE environment = ? AND flag = ? AND version = ?',
  // Versions of one state are written in order, one transaction each, so the newest version at or before a time is
  // the one with the greatest version among those written by then.
  at: 'SELECT * FROM flag_state_history WHERE environment = ? AND flag = ? AND at <= ? ORDER BY version DESC LIMIT 1',
  before:
    'SELECT version, at, action, reason, state FROM flag_state_history WHERE environment = ? AND flag = ? AND version <= ? ORDER BY version DESC LIMIT 1000',
};

/** The audit actions of the kill switches, which record when and why a flag was turned off (`killedAt`, `killReason`). */
const KILLS = new Set(['flag.kill', 'flag.kill-all']);
/** The writes that end a panic hold without turning the flag on (PUT, revert). */
const PANIC_ENDS = new Set(['flag-state.update', 'flag-state.revert']);

/** A past state with the kill-switch bookkeeping the history implies (see `HistoryStore.stateAt`). */
export interface PastState {
  entry: HistoryEntry;
  killedAt: string | null;
  killReason: string | null;
  panicked: boolean;
}

/**
 * Appends version `version` of a state to its history, inside the write that creates it: the write's actor and time,
 * the audit action and reason.
 */
export async function recordVersion(
  w: WriteContext,
  environment: string,
  flag: string,
  version: number,
  state: StoredFlagState,
  action: string,
  reason: string | null,
): Promise<void> {
  await w.tx.run(SQL.insert, [environment, flag, version, JSON.stringify(state), w.now, w.actor.tokenId, w.actor.name, action, reason]);
}

function toEntry(row: HistoryRow): HistoryEntry {
  return {
    version: Number(row.version),
    at: apiTime(Number(row.at)),
    actor: { tokenId: row.actor_token_id, name: row.actor_name },
    action: row.action,
    ...(row.reason !== null ? { reason: row.reason } : {}),
    state: toFlagState(JSON.parse(row.state) as StoredFlagState, Number(row.version)),
  };
}

/** The stored state of one version (inside a write, pass its transaction), or null when there is no such version. */
export async function historyVersion(sql: Sql, environment: string, flag: string, version: number): Promise<StoredFlagState | null> {
  const row = await sql.get<HistoryRow>(SQL.one, [environment, flag, version]);
  return row ? (JSON.parse(row.state) as StoredFlagState) : null;
}

export class HistoryStore {
  constructor(private readonly sql: Sql) {}

  /** A page of versions, newest first, and the cursor of the next (older) page (null on the last page). */
  async list(
    environment: string,
    flag: string,
    options: { cursor?: number; limit?: number } = {},
  ): Promise<{ entries: HistoryEntry[]; nextCursor: string | null }> {
    const limit = Math.min(Math.max(options.limit ?? 50, 1), 500);
    const rows = await this.sql.all<HistoryRow>(SQL.page, [environment, flag, options.cursor ?? Number.MAX_SAFE_INTEGER, limit + 1]);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return { entries: page.map(toEntry), nextCursor: rows.length > limit && last ? encodeHistoryCursor(Number(last.version)) : null };
  }

  async get(environment: string, flag: string, version: number): Promise<HistoryEntry | null> {
    const row = await this.sql.get<HistoryRow>(SQL.one, [environment, flag, version]);
    return row ? toEntry(row) : null;
  }

  /** The version current at `at` (epoch ms), or null when the state did not exist yet. */
  async at(environment: string, flag: string, at: number): Promise<HistoryEntry | null> {
    const row = await this.sql.get<HistoryRow>(SQL.at, [environment, flag, at]);
    return row ? toEntry(row) : null;
  }

  /**
   * The version current at `at` with its kill-switch bookkeeping: when the state is off, the write that turned it off
   * (the oldest of the trailing run of disabled versions) says whether it was a kill switch (then `killedAt` is its
   * time and `killReason` its reason) or `kill-all` (then `panicked`, unless a PUT or revert came since). Null before
   * the state existed.
   */
  async stateAt(environment: string, flag: string, at: number): Promise<PastState | null> {
    const entry = await this.at(environment, flag, at);
    if (!entry) return null;
    if (entry.state.enabled) return { entry, killedAt: null, killReason: null, panicked: false };
    type Past = Pick<HistoryRow, 'version' | 'at' | 'action' | 'reason' | 'state'>;
    let start: Past | undefined;
    let panicEnded = false;
    for (const row of await this.sql.all<Past>(SQL.before, [environment, flag, entry.version])) {
      if ((JSON.parse(row.state) as StoredFlagState).enabled) break;
      if (start && PANIC_ENDS.has(start.action)) panicEnded = true;
      start = row;
    }
    const killed = start !== undefined && KILLS.has(start.action);
    return {
      entry,
      killedAt: killed ? apiTime(Number(start!.at)) : null,
      killReason: killed ? start!.reason : null,
      panicked: start?.action === 'flag.kill-all' && !panicEnded,
    };
  }

  /** The changes from version `from` to version `to`; null (with which one) when a version does not exist. */
  async diff(environment: string, flag: string, from: number, to: number): Promise<HistoryDiff | { missing: number }> {
    const [a, b] = await Promise.all([this.get(environment, flag, from), this.get(environment, flag, to)]);
    if (!a) return { missing: from };
    if (!b) return { missing: to };
    // The states without their versions: the version always differs and is not a change of the state.
    const { version: _a, ...before } = a.state;
    const { version: _b, ...after } = b.state;
    return { from: a, to: b, changes: stateDiff(before as unknown as JsonValue, after as unknown as JsonValue) };
  }
}
