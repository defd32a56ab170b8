/**
 * The one way to write: one transaction that, besides the caller's changes, appends the audit entries, bumps the
 * version of every environment whose SDK-visible data changed (a counter row updated in the transaction, so versions
 * follow commit order), appends one change-log row per such environment (pruning old ones), sends a notification of
 * each new `<environment>:<version>` (PostgreSQL NOTIFY, delivered on commit to every replica) and, after COMMIT,
 * hands the deltas to `publish` (the local replica's live state and change feed, in commit order).
 *
 * Callers do not build deltas: they mark what they touched (`touchFlag`, `touchSegment`) and the writer reads the
 * committed-to-be rows inside the same transaction, so a delta always matches what a snapshot would show.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Change, Delta } from '@aviary/sdk/protocol';
import type { JsonValue } from '@aviary/sdk/core';
import type { ChangeEvent } from './change-feed.js';
import type { StorePort, Tx } from './port.js';
import { readFlagConfig, readSegment } from './snapshot.js';
import type { TokenRow } from './rows.js';
import { readsEnvironment, streamKeyOf, tokenActive } from '../auth/stream-keys.js';
import type { OutboxHook } from '../webhooks/outbox.js';

/** An admin role (CONTRACT §14). */
export type Role = 'admin' | 'editor' | 'oncall' | 'viewer';

/** What kind of actor a change comes from; written to `audit_log.actor_kind`. */
export type ActorKind = 'token' | 'person' | 'schedule' | 'trigger' | 'canary-guard' | 'system';

/**
 * Who is writing: a token (id and name), a person signed in with OpenID Connect (subject, email), or a system actor
 * such as `canary-guard`. `role` and `environments` are what the actor may do (CONTRACT §14); system actors have none
 * and are not checked.
 */
export interface Actor {
  tokenId: string | null;
  name: string;
  /** Defaults to `token` when `tokenId` is set, `system` otherwise. */
  kind?: ActorKind;
  /** A person's OpenID Connect subject and email. */
  subject?: string | null;
  email?: string | null;
  role?: Role;
  /** The environments an `editor`/`oncall` may change; null or absent: all. */
  environments?: readonly string[] | null;
}

/** The audit kind of an actor. */
export function actorKind(actor: Actor): ActorKind {
  return actor.kind ?? (actor.tokenId !== null ? 'token' : 'system');
}

/** One audit entry to append. `before`/`after` are the resource's JSON before and after the write. */
export interface AuditInput {
  action: string;
  resourceType: string;
  resourceKey: string;
  environment?: string | null;
  before?: unknown;
  after?: unknown;
  reason?: string | null;
}

/** What a write callback gets. Everything happens inside one transaction. */
export interface WriteContext {
  /** The transaction's statements (await only these inside the callback). */
  tx: Tx;
  /** The write's timestamp (one `now()` for the whole transaction). */
  now: number;
  actor: Actor;
  /** The flag's definition or state changed: `environment` omitted means every environment. */
  touchFlag(flag: string, environment?: string): void;
  /** A segment changed (or was deleted): every environment sees it. */
  touchSegment(segment: string): void;
  /**
   * An SDK key or relay token was created, revoked or changed: relays (and only relays) get a `key.upsert` or
   * `key.delete` in every environment it reads, versioned and logged like any change (server/auth/stream-keys.ts).
   */
  touchToken(tokenId: string): void;
  /** Appends an audit entry (written in the same transaction). */
  audit(entry: AuditInput): void;
}

/** How many change-log versions are kept per environment; older resumes get a fresh snapshot instead. */
export const DEFAULT_CHANGE_LOG_LIMIT = 1000;

/** Versions skipped when the database is found behind what was served (as after an unclean stop: server-state.ts). */
export const VERSION_GAP = 1000;

/** The channel on which every committed change is announced as `<environment>:<version>`. */
export const CHANGES_CHANNEL = 'aviary_changes';

/** The result of a write: the callback's value and the new version of each environment it changed. */
export interface WriteResult<T> {
  value: T;
  versions: Map<string, number>;
}

const AUDIT_INSERT = `INSERT INTO audit_log (at, actor_token_id, actor_name, actor_kind, actor_subject, actor_email, action, resource_type,
  resource_key, environment, before, after, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

export class Writer {
  /** The webhook outbox (server/webhooks/outbox.ts): records events of the audit entries in the same transaction. */
  private outbox: OutboxHook | null = null;

  /** Set while a write's callback runs: a write started from inside it would wait for itself (and could not be atomic). */
  private readonly inside = new AsyncLocalStorage<true>();

  constructor(
    private readonly store: StorePort,
    /** Receives the committed deltas in commit order (the app feeds its live state and change feed). */
    private readonly publish: (events: ChangeEvent[]) => void,
    private readonly now: () => number,
    private readonly changeLogLimit = DEFAULT_CHANGE_LOG_LIMIT,
    /** The newest version of an environment this replica has already served (its live state), or null. */
    private readonly served: (environment: string) => number | null = () => null,
  ) {}

  /** Installs the webhook outbox (once, at boot). */
  setOutbox(outbox: OutboxHook): void {
    this.outbox = outbox;
  }

  /** Resolves once everything committed so far is durable (await it before acknowledging a write). */
  durable(): Promise<void> {
    return this.store.durable();
  }

  /**
   * `durable()` on the calling thread where the adapter can (SQLite: blocks the loop for one fsync): for the kill
   * switches, so their answer does not also wait for the loop to come back round under SDK load.
   */
  durableSync(): void {
    this.store.durableSync?.();
  }

  /**
   * Runs `fn` in one transaction (on PostgreSQL under the cluster-wide write lock, so writes from every replica are
   * serialized like SQLite's). If `fn` throws, nothing is written. Never nest: pass the WriteContext down instead.
   */
  async write<T>(actor: Actor, fn: (w: WriteContext) => Promise<T> | T): Promise<WriteResult<T>> {
    // A nested write would queue behind its own transaction (or, if it ran, emit deltas of a transaction that may
    // still roll back). Pass the outer WriteContext down instead (e.g. FlagStore.mutateState).
    if (this.inside.getStore()) throw new Error('Writer.write cannot be nested in another write; pass the WriteContext down');
    const versions = new Map<string, number>();
    const events: ChangeEvent[] = [];
    let queued = false;
    const value = await this.store.transaction(
      async (tx) => {
        // Cleared on every attempt: nothing from a rolled-back attempt may leak into the result.
        versions.clear();
        events.length = 0;
        queued = false;
        const now = this.now();
        const allFlags = new Set<string>();
        const envFlags = new Map<string, Set<string>>();
        const touchedSegments = new Set<string>();
        const touchedTokens = new Set<string>();
        const audits: AuditInput[] = [];
        const ctx: WriteContext = {
          tx,
          now,
          actor,
          touchFlag: (flag, environment) => {
            if (environment === undefined) allFlags.add(flag);
            else {
              let s = envFlags.get(environment);
              if (!s) envFlags.set(environment, (s = new Set()));
              s.add(flag);
            }
          },
          touchSegment: (segment) => void touchedSegments.add(segment),
          touchToken: (tokenId) => void touchedTokens.add(tokenId),
          audit: (e) => void audits.push(e),
        };
        const result = await this.inside.run(true, () => fn(ctx));
        for (const e of audits) {
          await tx.run(AUDIT_INSERT, [
            now,
            actor.tokenId,
            actor.name,
            actorKind(actor),
            actor.subject ?? null,
            actor.email ?? null,
            e.action,
            e.resourceType,
            e.resourceKey,
            e.environment ?? null,
            e.before === undefined ? null : JSON.stringify(e.before as JsonValue),
            e.after === undefined ? null : JSON.stringify(e.after as JsonValue),
            e.reason ?? null,
          ]);
        }
        // Key changes (relay audience): each touched SDK key or relay token, in every environment it reads.
        const keyChanges = new Map<string, Change[]>();
        if (touchedTokens.size) {
          const allEnvs = (await tx.all<{ key: string }>('SELECT key FROM environments ORDER BY key')).map((r) => r.key);
          for (const id of touchedTokens) {
            const row = await tx.get<TokenRow>('SELECT * FROM tokens WHERE id = ?', [id]);
            const key = row ? streamKeyOf(row) : null;
            if (!row || !key) continue;
            const change: Change = tokenActive(row, now) ? { type: 'key.upsert', key } : { type: 'key.delete', id };
            for (const env of allEnvs) {
              if (!readsEnvironment(row, env)) continue;
              let list = keyChanges.get(env);
              if (!list) keyChanges.set(env, (list = []));
              list.push(change);
            }
          }
        }
        const environments =
          allFlags.size || touchedSegments.size
            ? (await tx.all<{ key: string }>('SELECT key FROM environments ORDER BY key')).map((r) => r.key)
            : [...new Set([...envFlags.keys(), ...keyChanges.keys()])].sort();
        for (const env of environments) {
          const changes: Change[] = [...(keyChanges.get(env) ?? [])];
          for (const key of touchedSegments) {
            const segment = await readSegment(tx, key);
            changes.push(segment ? { type: 'segment.upsert', segment } : { type: 'segment.delete', key });
          }
          const flagsHere = new Set([...allFlags, ...(envFlags.get(env) ?? [])]);
          for (const key of flagsHere) {
            const flag = await readFlagConfig(tx, env, key);
            changes.push(flag ? { type: 'flag.upsert', flag } : { type: 'flag.delete', key });
          }
          if (changes.length === 0) continue;
          const bumped = await tx.get<{ version: number }>('UPDATE environments SET version = version + 1 WHERE key = ? RETURNING version', [env]);
          if (!bumped) continue; // environment does not exist: nothing for SDKs to see
          let version = Number(bumped.version);
          const served = this.served(env);
          if (served !== null && version <= served) {
            // The database is behind what this replica already served (a failover lost commits, a restore): never
            // give a version number SDKs may hold to a different change. Jump past it; every SDK resyncs.
            version = served + VERSION_GAP;
            await tx.run('UPDATE environments SET version = ? WHERE key = ?', [version, env]);
            await tx.run(AUDIT_INSERT, [
              now,
              null,
              'system',
              'system',
              null,
              null,
              'server.recover',
              'environment',
              env,
              env,
              null,
              JSON.stringify({ databaseVersion: Number(bumped.version) - 1, served, version }),
              'the database was behind the versions this replica had served (a failover that lost commits?); versions moved past them so every SDK resyncs',
            ]);
          }
          await tx.run('INSERT INTO change_log (environment, version, changes, at) VALUES (?, ?, ?, ?)', [
            env,
            version,
            JSON.stringify(changes),
            now,
          ]);
          if (version > this.changeLogLimit)
            await tx.run('DELETE FROM change_log WHERE environment = ? AND version <= ?', [env, version - this.changeLogLimit]);
          await tx.notify(CHANGES_CHANNEL, `${env}:${version}`);
          versions.set(env, version);
          events.push({ environment: env, delta: { version, changes } satisfies Delta });
        }
        // Webhook events announced by the audit entries, in this transaction (the outbox).
        if (this.outbox && audits.length) queued = await this.outbox.record(tx, now, actor, audits, versions);
        return result;
      },
      { lock: 'write' },
    );
    if (events.length) this.publish(events);
    if (queued) this.outbox?.committed();
    return { value, versions };
  }
}
