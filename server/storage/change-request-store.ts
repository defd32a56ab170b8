/**
 * Change requests (CONTRACT §11): in an environment that requires approval, a PUT of a flag's state becomes a pending
 * request holding the exact (validated) state and the state's version it was based on; another actor approves or
 * rejects it; `apply` writes the state through `FlagStateStore.mutateState` only while the flag's state is still at
 * that base version (checked inside the writing transaction, so the check and the write are atomic), and refuses with
 * the diff between the state now and the request's otherwise.
 *
 * Every write goes through the Writer and is audited (`change-request.create|approve|reject|apply`). Creating,
 * approving and rejecting change nothing SDKs see: no version is bumped, nothing is streamed. Kill switches, the panic
 * button, revert and canary rollbacks never come here: they write through FlagStateStore directly.
 */
import { randomUUID } from 'node:crypto';
import type { JsonValue } from '@aviary/sdk/core';
import { stateDiff, type StateChange } from './state-diff.js';
import { apiTime } from '../openapi/time.js';
import { validateFlagState } from './core-api.js';
import { definitionOf, prerequisiteFlags, replaceWith, segmentKeys, type FlagStateStore, type StateWriteResult } from './flag-state-store.js';
import { bool, type Sql, type StorePort } from './port.js';
import type { Precondition } from './preconditions.js';
import type { FlagRow, FlagStateRow, RowOf } from './rows.js';
import type * as schema from './schema.js';
import type { StoredFlagState } from './schema.js';
import { conflict, forbidden, invalid, notFound, StoreError } from './store-errors.js';
import type { Actor, WriteContext, Writer } from './writer.js';

type ChangeRequestRow = RowOf<typeof schema.changeRequests>;

/** Where a change request is: `pending` → `approved` → `applied`, or `rejected` from either of the first two. */
export type ChangeRequestStatus = 'pending' | 'approved' | 'rejected' | 'applied';
export const CHANGE_REQUEST_STATUSES: readonly ChangeRequestStatus[] = ['pending', 'approved', 'rejected', 'applied'];

/** A change request as the API shows it. */
export interface ChangeRequestInfo {
  id: string;
  status: ChangeRequestStatus;
  flag: string;
  environment: string;
  /** The version of the flag's state the request was made against; `apply` needs the state still there. */
  baseVersion: number;
  /** The whole state the request would write. */
  state: StoredFlagState;
  /** The author's reason (the PUT's `reason`). */
  reason: string | null;
  author: { tokenId: string | null; name: string };
  /** Who approved or rejected it, and why; null while pending. */
  reviewer: { tokenId: string | null; name: string } | null;
  reviewReason: string | null;
  createdAt: string;
  updatedAt: string;
  /** Open requests only (null once rejected or applied): the flag's state version now. */
  currentVersion: number | null;
  /** Open requests only: what applying would change in the current state (JSON-pointer paths). */
  diff: StateChange[] | null;
}

/** What a PUT of a state did: applied at once, or held as a change request. */
export type PutOutcome = { applied: StateWriteResult; request?: undefined } | { request: ChangeRequestInfo; applied?: undefined };

const SQL = {
  env: 'SELECT require_approval FROM environments WHERE key = ?',
  flag: 'SELECT archived FROM flags WHERE key = ?',
  state: 'SELECT * FROM flag_states WHERE environment = ? AND flag = ?',
  one: 'SELECT * FROM change_requests WHERE id = ?',
  insert: `INSERT INTO change_requests (id, environment, flag, base_version, state, reason, status, author_token_id, author_name, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)`,
  review: `UPDATE change_requests SET status = ?, reviewer_token_id = ?, reviewer_name = ?, review_reason = ?, updated_at = ? WHERE id = ?`,
  applied: `UPDATE change_requests SET status = 'applied', updated_at = ? WHERE id = ?`,
};

/** Whether two actors are the same one: tokens by id (configured tokens have stable ids), system actors by name. */
export function sameActor(a: { tokenId: string | null; name: string }, b: Actor): boolean {
  if (a.tokenId !== null || b.tokenId !== null) return a.tokenId === b.tokenId;
  return a.name === b.name;
}

export class ChangeRequestStore {
  constructor(
    private readonly store: StorePort,
    private readonly writer: Writer,
    private readonly states: FlagStateStore,
  ) {}

  /**
   * A PUT of a flag's state: validated first (bad input is refused whatever the environment requires), then, in one
   * transaction, written at once, or, when the environment requires approval, held as a pending change request based
   * on the state's current version (the `If-Match` precondition is checked against it either way).
   */
  async putOrRequest(
    actor: Actor,
    environment: string,
    key: string,
    input: unknown,
    precondition: Precondition | undefined,
    reason: string | null,
  ): Promise<PutOutcome> {
    const state = await this.states.validateInput(key, input);
    const { value, versions } = await this.writer.write(actor, async (w): Promise<PutOutcome> => {
      const env = await w.tx.get<{ require_approval: number | boolean }>(SQL.env, [environment]);
      if (!env) throw notFound(`No environment "${environment}".`);
      if (!bool(env.require_approval)) {
        return {
          applied: await this.states.mutateState(w, environment, key, replaceWith(state), reason, { action: 'flag-state.update', precondition }),
        };
      }
      return { request: await this.create(w, environment, key, state, precondition, reason) };
    });
    if (value.applied) return { applied: { ...value.applied, environmentVersion: versions.get(environment) ?? value.applied.environmentVersion } };
    return value;
  }

  private async create(
    w: WriteContext,
    environment: string,
    key: string,
    state: StoredFlagState,
    precondition: Precondition | undefined,
    reason: string | null,
  ): Promise<ChangeRequestInfo> {
    const flag = await w.tx.get<{ archived: number | boolean }>(SQL.flag, [key]);
    if (!flag) throw notFound(`No flag "${key}".`);
    const row = await w.tx.get<FlagStateRow>(SQL.state, [environment, key]);
    if (!row) throw notFound(`Flag "${key}" has no state in "${environment}".`);
    precondition?.(Number(row.version));
    if (bool(flag.archived)) throw conflict(`Flag "${key}" is archived; un-archive it before changing its state.`);
    // Refused now, as a direct PUT would be, rather than at apply: prerequisites naming a flag or variant the
    // environment lacks, or closing a cycle there (checked again when applied, against the flags then).
    if (state.prerequisites?.length) {
      const def = (await w.tx.get<FlagRow>('SELECT * FROM flags WHERE key = ?', [key]))!;
      const check = validateFlagState(state, definitionOf(def), await segmentKeys(w.tx), await prerequisiteFlags(w.tx, environment));
      if (!check.ok) throw invalid(check.issues);
    }
    const id = randomUUID();
    await w.tx.run(SQL.insert, [
      id,
      environment,
      key,
      Number(row.version),
      JSON.stringify(state),
      reason,
      w.actor.tokenId,
      w.actor.name,
      w.now,
      w.now,
    ]);
    const created = await this.info(w.tx, (await w.tx.get<ChangeRequestRow>(SQL.one, [id]))!);
    w.audit({ action: 'change-request.create', resourceType: 'change-request', resourceKey: id, environment, after: record(created), reason });
    return created;
  }

  /** Newest first; filtered by environment, status and flag when given. */
  async list(filter: { environment?: string | undefined; status?: ChangeRequestStatus | undefined; flag?: string | undefined; limit?: number } = {}) {
    const where: string[] = [];
    const params: (string | number)[] = [];
    for (const column of ['environment', 'status', 'flag'] as const) {
      const v = filter[column];
      if (v === undefined) continue;
      where.push(`${column} = ?`);
      params.push(v);
    }
    params.push(filter.limit ?? 100);
    const rows = await this.store.all<ChangeRequestRow>(
      `SELECT * FROM change_requests${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ?`,
      params,
    );
    const out: ChangeRequestInfo[] = [];
    for (const r of rows) out.push(await this.info(this.store, r));
    return out;
  }

  async get(id: string): Promise<ChangeRequestInfo | null> {
    const row = await this.store.get<ChangeRequestRow>(SQL.one, [id]);
    return row ? this.info(this.store, row) : null;
  }

  /** Approves a pending request. The author cannot approve their own (`forbidden`). */
  async approve(actor: Actor, id: string, reason: string | null): Promise<ChangeRequestInfo> {
    return this.review(actor, id, 'approved', reason);
  }

  /** Rejects a pending or approved request (its author may withdraw it this way). */
  async reject(actor: Actor, id: string, reason: string | null): Promise<ChangeRequestInfo> {
    return this.review(actor, id, 'rejected', reason);
  }

  private async review(actor: Actor, id: string, status: 'approved' | 'rejected', reason: string | null): Promise<ChangeRequestInfo> {
    const { value } = await this.writer.write(actor, async (w) => {
      const row = await this.open(w.tx, id);
      if (status === 'approved') {
        if (row.status !== 'pending') throw conflict(`Change request ${id} is ${row.status}; only a pending request can be approved.`);
        if (sameActor({ tokenId: row.author_token_id, name: row.author_name }, actor))
          throw forbidden(`Change request ${id} must be approved by another actor than its author ("${row.author_name}").`);
      }
      await w.tx.run(SQL.review, [status, actor.tokenId, actor.name, reason, w.now, id]);
      const after = await this.info(w.tx, (await w.tx.get<ChangeRequestRow>(SQL.one, [id]))!);
      w.audit({
        action: status === 'approved' ? 'change-request.approve' : 'change-request.reject',
        resourceType: 'change-request',
        resourceKey: id,
        environment: row.environment,
        before: { status: row.status },
        after: record(after),
        reason,
      });
      return after;
    });
    return value;
  }

  /**
   * Applies an approved request: writes its state as a new version of the flag's state (audited as
   * `flag-state.update`, streamed like any write) if the state is still at the request's base version; otherwise
   * refuses (`conflict`, with `currentVersion` and the `diff` from the state now to the request's state) and the
   * request stays approved.
   */
  async apply(actor: Actor, id: string, reason: string | null): Promise<{ request: ChangeRequestInfo; result: StateWriteResult }> {
    const { value, versions } = await this.writer.write(actor, async (w) => {
      const row = await this.open(w.tx, id);
      if (row.status !== 'approved') throw conflict(`Change request ${id} is ${row.status}; it needs an approval before it can be applied.`);
      const stateRow = await w.tx.get<FlagStateRow>(SQL.state, [row.environment, row.flag]);
      if (!stateRow) throw notFound(`Flag "${row.flag}" has no state in "${row.environment}".`);
      const base = Number(row.base_version);
      const moved: Precondition = (current) => {
        if (current === base) return;
        const now = JSON.parse(stateRow.state) as StoredFlagState;
        throw new StoreError(
          'conflict',
          `The state of "${row.flag}" in "${row.environment}" moved from version ${base} to ${current} since change request ${id} was made; ` +
            'make a new request against the current state.',
          [],
          { baseVersion: base, currentVersion: current, diff: stateDiff(now as unknown as JsonValue, JSON.parse(row.state) as JsonValue) },
        );
      };
      const label = `change request ${id}`;
      const result = await this.states.mutateState(
        w,
        row.environment,
        row.flag,
        replaceWith(JSON.parse(row.state) as StoredFlagState),
        reason ?? row.reason ?? label,
        {
          action: 'flag-state.update',
          precondition: moved,
        },
      );
      await w.tx.run(SQL.applied, [w.now, id]);
      const after = await this.info(w.tx, (await w.tx.get<ChangeRequestRow>(SQL.one, [id]))!);
      w.audit({
        action: 'change-request.apply',
        resourceType: 'change-request',
        resourceKey: id,
        environment: row.environment,
        before: { status: row.status },
        after: { ...record(after), version: result.state.version },
        reason,
      });
      return { request: after, result };
    });
    return {
      request: value.request,
      result: { ...value.result, environmentVersion: versions.get(value.request.environment) ?? value.result.environmentVersion },
    };
  }

  /** The row of a request that is still open (pending or approved); `not-found` or `conflict` otherwise. */
  private async open(sql: Sql, id: string): Promise<ChangeRequestRow> {
    const row = await sql.get<ChangeRequestRow>(SQL.one, [id]);
    if (!row) throw notFound(`No change request "${id}".`);
    if (row.status === 'rejected' || row.status === 'applied') throw conflict(`Change request ${id} is already ${row.status}.`);
    return row;
  }

  private async info(sql: Sql, r: ChangeRequestRow): Promise<ChangeRequestInfo> {
    const state = JSON.parse(r.state) as StoredFlagState;
    let currentVersion: number | null = null;
    let diff: StateChange[] | null = null;
    if (r.status === 'pending' || r.status === 'approved') {
      const now = await sql.get<FlagStateRow>(SQL.state, [r.environment, r.flag]);
      if (now) {
        currentVersion = Number(now.version);
        diff = stateDiff(JSON.parse(now.state) as JsonValue, state as unknown as JsonValue);
      }
    }
    return {
      id: r.id,
      status: r.status,
      flag: r.flag,
      environment: r.environment,
      baseVersion: Number(r.base_version),
      state,
      reason: r.reason,
      author: { tokenId: r.author_token_id, name: r.author_name },
      reviewer: r.reviewer_name === null ? null : { tokenId: r.reviewer_token_id, name: r.reviewer_name },
      reviewReason: r.review_reason,
      createdAt: apiTime(Number(r.created_at)),
      updatedAt: apiTime(Number(r.updated_at)),
      currentVersion,
      diff,
    };
  }
}

/** A request as the audit log keeps it (without the diff, which belongs to the moment it is read). */
function record(info: ChangeRequestInfo): Omit<ChangeRequestInfo, 'diff' | 'currentVersion'> {
  const { diff: _d, currentVersion: _c, ...rest } = info;
  return rest;
}
