/**
 * Triggers (CONTRACT §13): a secret URL that kills or revives one flag in one environment when anything POSTs to it
 * (an Alertmanager, Grafana, Datadog or PagerDuty webhook). Stored in `triggers`: the secret itself is shown once, at
 * creation; only its SHA-256 (hex) is kept, and a fired URL is found by that hash (an index lookup: the comparison
 * never runs over the secret itself, like token-store.ts).
 *
 * Creating and deleting a trigger are writes through the Writer, audited (`trigger.create`, `trigger.delete`). Firing
 * one is a plain `FlagStateStore.kill`/`revive` with actor `trigger:<name>` (so it is audited, streamed and fsynced like
 * any kill switch, never held), whose transaction also counts the firing (`last_fired_at`, `fired`).
 */
import { hash, randomBytes, randomUUID } from 'node:crypto';
import { apiTime, apiTimeOrNull } from '../openapi/time.js';
import type { FlagStateStore, StateWriteResult } from './flag-state-store.js';
import type { Sql, StorePort } from './port.js';
import type { RowOf } from './rows.js';
import type * as schema from './schema.js';
import { notFound } from './store-errors.js';
import type { Actor, WriteContext, Writer } from './writer.js';

export type TriggerRow = RowOf<typeof schema.triggers>;
export type TriggerAction = TriggerRow['action'];

/** A trigger as the admin API shows it (never the secret or its hash). */
export interface TriggerResource {
  id: string;
  flag: string;
  environment: string;
  action: TriggerAction;
  name: string;
  createdAt: string;
  author: Actor;
  lastFiredAt: string | null;
  /** How many times its URL performed the action (answered 200). */
  fired: number;
}

const SQL = {
  flag: 'SELECT key FROM flags WHERE key = ?',
  envExists: 'SELECT key FROM environments WHERE key = ?',
  get: 'SELECT * FROM triggers WHERE id = ?',
  byHash: 'SELECT * FROM triggers WHERE hash = ?',
  list: 'SELECT * FROM triggers WHERE environment = ? AND flag = ? ORDER BY created_at, id',
  insert: `INSERT INTO triggers (id, environment, flag, action, name, hash, created_at, author_name, last_fired_at, fired)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 0)`,
  delete: 'DELETE FROM triggers WHERE id = ?',
  fired: 'UPDATE triggers SET last_fired_at = ?, fired = fired + 1 WHERE id = ?',
};

/** The SHA-256 (hex) a trigger's secret is stored and looked up as. */
export function triggerHash(secret: string): string {
  return hash('sha256', secret, 'hex');
}

/** A fresh trigger secret: 32 random bytes, base64url (43 characters). */
export function generateTriggerSecret(): string {
  return randomBytes(32).toString('base64url');
}

function resourceOf(row: TriggerRow): TriggerResource {
  return {
    id: row.id,
    flag: row.flag,
    environment: row.environment,
    action: row.action,
    name: row.name,
    createdAt: apiTime(Number(row.created_at)),
    author: { tokenId: null, name: row.author_name },
    lastFiredAt: apiTimeOrNull(nullableNumber(row.last_fired_at)),
    fired: Number(row.fired),
  };
}

function nullableNumber(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

export class TriggerStore {
  constructor(
    private readonly store: StorePort,
    private readonly writer: Writer,
    private readonly states: FlagStateStore,
  ) {}

  private async requireFlagEnv(sql: Sql, environment: string, flag: string): Promise<void> {
    if (!(await sql.get(SQL.flag, [flag]))) throw notFound(`No flag "${flag}".`);
    if (!(await sql.get(SQL.envExists, [environment]))) throw notFound(`No environment "${environment}".`);
  }

  /** Creates a trigger; answers it and its secret (shown once: only the hash is stored). */
  async create(
    actor: Actor,
    environment: string,
    flag: string,
    input: { action: TriggerAction; name: string },
  ): Promise<{ trigger: TriggerResource; secret: string }> {
    const secret = generateTriggerSecret();
    const { value } = await this.writer.write(actor, async (w) => {
      await this.requireFlagEnv(w.tx, environment, flag);
      const id = randomUUID();
      await w.tx.run(SQL.insert, [id, environment, flag, input.action, input.name, triggerHash(secret), w.now, actor.name]);
      const created = resourceOf((await w.tx.get<TriggerRow>(SQL.get, [id]))!);
      w.audit({ action: 'trigger.create', resourceType: 'trigger', resourceKey: id, environment, after: created });
      return created;
    });
    return { trigger: value, secret };
  }

  /** A flag's triggers in an environment, oldest first. */
  async list(environment: string, flag: string): Promise<TriggerResource[]> {
    await this.requireFlagEnv(this.store, environment, flag);
    return (await this.store.all<TriggerRow>(SQL.list, [environment, flag])).map(resourceOf);
  }

  /** Deletes (revokes) a trigger: its URL answers 404 from now on. Answers the deleted trigger. */
  async delete(actor: Actor, environment: string, flag: string, id: string): Promise<TriggerResource> {
    const { value } = await this.writer.write(actor, async (w) => {
      const row = await w.tx.get<TriggerRow>(SQL.get, [id]);
      if (!row || row.environment !== environment || row.flag !== flag) throw notFound(`No trigger "${id}" of "${flag}" in "${environment}".`);
      const before = resourceOf(row);
      await w.tx.run(SQL.delete, [id]);
      w.audit({ action: 'trigger.delete', resourceType: 'trigger', resourceKey: id, environment, before });
      return before;
    });
    return value;
  }

  /** The trigger whose URL carries `secret`, or null (wrong secret, or deleted). */
  async findBySecret(secret: string): Promise<TriggerResource | null> {
    const row = await this.store.get<TriggerRow>(SQL.byHash, [triggerHash(secret)]);
    return row ? resourceOf(row) : null;
  }

  /**
   * Performs the trigger's action as actor `trigger:<name>`, and records the firing (`fired`, `last_fired_at`) in the
   * same transaction, which first re-reads the trigger: one deleted since it was looked up is `not-found` and nothing
   * changes. A kill of a flag already off changes no state but still counts as a firing.
   */
  async fire(trigger: TriggerResource, reason: string | null): Promise<StateWriteResult> {
    const actor: Actor = { tokenId: null, name: `trigger:${trigger.name}`, kind: 'trigger' };
    const guard = async (w: WriteContext) => {
      if ((await w.tx.run(SQL.fired, [w.now, trigger.id])) === 0) throw notFound('No trigger at this URL (it was deleted).');
    };
    return trigger.action === 'kill'
      ? this.states.kill(actor, trigger.environment, trigger.flag, reason, { guard })
      : this.states.revive(actor, trigger.environment, trigger.flag, reason, { guard });
  }
}
