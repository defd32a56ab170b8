/**
 * The one way to write: a synchronous IMMEDIATE transaction that, besides the caller's changes, appends the audit
 * entries, bumps the version of every environment whose SDK-visible data changed, appends one change-log row per
 * such environment (pruning old ones) and, after COMMIT, emits the deltas on the change feed.
 *
 * Callers do not build deltas: they mark what they touched (`touchFlag`, `touchSegment`) and the writer reads the
 * committed-to-be rows inside the same transaction, so a delta always matches what a snapshot would show.
 */
import type Database from 'better-sqlite3';
import type { Change, Delta } from '@aviary/sdk/protocol';
import type { JsonValue } from '@aviary/sdk/core';
import type { ChangeFeed, ChangeEvent } from './change-feed.js';
import type { AviaryDb } from './db.js';
import { readFlagConfig, readSegment } from './snapshot.js';
import { WalSync, type FsyncStats } from './wal-sync.js';

/** Who is writing: the token (id and name) or a system actor such as `canary-guard`. */
export interface Actor {
  tokenId: string | null;
  name: string;
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
  db: AviaryDb;
  sqlite: Database.Database;
  /** The write's timestamp (one `now()` for the whole transaction). */
  now: number;
  actor: Actor;
  /** The flag's definition or state changed: `environment` omitted means every environment. */
  touchFlag(flag: string, environment?: string): void;
  /** A segment changed (or was deleted): every environment sees it. */
  touchSegment(segment: string): void;
  audit(entry: AuditInput): void;
}

/** How many change-log versions are kept per environment; older resumes get a fresh snapshot instead. */
export const DEFAULT_CHANGE_LOG_LIMIT = 1000;

/** The result of a write: the callback's value and the new version of each environment it changed. */
export interface WriteResult<T> {
  value: T;
  versions: Map<string, number>;
}

export class Writer {
  private readonly stmts;
  private readonly walSync: WalSync;

  constructor(
    private readonly db: AviaryDb,
    private readonly sqlite: Database.Database,
    private readonly feed: ChangeFeed,
    private readonly now: () => number,
    private readonly changeLogLimit = DEFAULT_CHANGE_LOG_LIMIT,
    private readonly log: { error: (obj: unknown, msg: string) => void } = console,
  ) {
    this.walSync = new WalSync(sqlite);
    this.stmts = {
      envKeys: sqlite.prepare<[], { key: string }>('SELECT key FROM environments ORDER BY key'),
      bump: sqlite.prepare<[string], { version: number }>('UPDATE environments SET version = version + 1 WHERE key = ? RETURNING version'),
      insertChange: sqlite.prepare('INSERT INTO change_log (environment, version, changes, at) VALUES (?, ?, ?, ?)'),
      prune: sqlite.prepare('DELETE FROM change_log WHERE environment = ? AND version <= ?'),
      audit: sqlite.prepare(
        `INSERT INTO audit_log (at, actor_token_id, actor_name, action, resource_type, resource_key, environment, before, after, reason)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
    };
  }

  /**
   * Resolves once everything committed so far is on stable storage (fsync of the WAL, off the event loop).
   * Await it before acknowledging a write; the admin routes do so in an onSend hook.
   */
  durable(): Promise<void> {
    return this.walSync.durable();
  }

  /**
   * `durable()` on the calling thread (blocks the event loop for one fsync): for the kill switch, so its answer does
   * not also wait for the loop to come back round under SDK load. The onSend `durable()` then has nothing left to do.
   */
  durableSync(): void {
    this.walSync.durableSync();
  }

  /** Durations of the WAL fsyncs behind `durable()` (rendered as `aviary_wal_fsync_seconds` on /metrics). */
  get fsyncStats(): Readonly<FsyncStats> {
    return this.walSync.stats;
  }

  /** Releases the WAL file descriptor (the app calls it on close). */
  close(): void {
    this.walSync.close();
  }

  /**
   * Runs `fn` in one IMMEDIATE transaction (the write lock is taken up front, so no upgrade deadlock with another
   * process). `fn` must be synchronous: an `await` inside would commit early. If `fn` throws, nothing is written.
   */
  write<T>(actor: Actor, fn: (w: WriteContext) => T): WriteResult<T> {
    // A nested write would become a savepoint whose deltas are emitted before the outer transaction commits (or rolls
    // back). Pass the outer WriteContext down instead (e.g. FlagStore.mutateState).
    if (this.sqlite.inTransaction) throw new Error('Writer.write cannot be nested in another transaction; pass the WriteContext down');
    const now = this.now();
    const events: ChangeEvent[] = [];
    const versions = new Map<string, number>();
    const run = this.sqlite.transaction((): T => {
      const allFlags = new Set<string>();
      const envFlags = new Map<string, Set<string>>();
      const touchedSegments = new Set<string>();
      const ctx: WriteContext = {
        db: this.db,
        sqlite: this.sqlite,
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
        audit: (e) => {
          this.stmts.audit.run(
            now,
            actor.tokenId,
            actor.name,
            e.action,
            e.resourceType,
            e.resourceKey,
            e.environment ?? null,
            e.before === undefined ? null : JSON.stringify(e.before as JsonValue),
            e.after === undefined ? null : JSON.stringify(e.after as JsonValue),
            e.reason ?? null,
          );
        },
      };
      const value = fn(ctx);
      const environments = allFlags.size || touchedSegments.size ? this.stmts.envKeys.all().map((r) => r.key) : [...envFlags.keys()];
      for (const env of environments) {
        const changes: Change[] = [];
        for (const key of touchedSegments) {
          const segment = readSegment(this.sqlite, key);
          changes.push(segment ? { type: 'segment.upsert', segment } : { type: 'segment.delete', key });
        }
        const flagsHere = new Set([...allFlags, ...(envFlags.get(env) ?? [])]);
        for (const key of flagsHere) {
          const flag = readFlagConfig(this.sqlite, env, key);
          changes.push(flag ? { type: 'flag.upsert', flag } : { type: 'flag.delete', key });
        }
        if (changes.length === 0) continue;
        const bumped = this.stmts.bump.get(env);
        if (!bumped) continue; // environment does not exist: nothing for SDKs to see
        this.stmts.insertChange.run(env, bumped.version, JSON.stringify(changes), now);
        if (bumped.version > this.changeLogLimit) this.stmts.prune.run(env, bumped.version - this.changeLogLimit);
        versions.set(env, bumped.version);
        events.push({ environment: env, delta: { version: bumped.version, changes } satisfies Delta });
      }
      return value;
    });
    const value = run.immediate();
    if (events.length) {
      // Each listener separately: the write is committed, so a failing subscriber must neither turn it into an error
      // response nor keep the subscribers after it from hearing about it.
      const listeners = this.feed.listeners('change') as ((e: ChangeEvent) => void)[];
      for (const event of events) {
        for (const listener of listeners) {
          try {
            listener(event);
          } catch (err) {
            this.log.error({ err, environment: event.environment }, 'change feed listener failed');
          }
        }
      }
    }
    return { value, versions };
  }
}
