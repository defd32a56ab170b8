/**
 * The store port: the only way the server reaches its database. Two adapters implement it: SQLite (better-sqlite3,
 * the default, `sqlite-port.ts`) and PostgreSQL (postgres.js, `postgres-port.ts`, selected by `AVIARY_DATABASE_URL`).
 *
 * SQL is written once, in the dialect both engines accept: `?` placeholders (the PostgreSQL adapter numbers them),
 * `INSERT ... ON CONFLICT`, `RETURNING`, no `rowid`, no engine functions beyond `count`, `sum`, `max`, `min`,
 * `coalesce`, `lower`. Columns follow the drizzle schemas (`schema.ts`, `schema-postgres.ts`): JSON is stored as text
 * on both, times as epoch milliseconds (INTEGER / BIGINT, read back as numbers), booleans are 0/1 on SQLite and
 * true/false on PostgreSQL (read them with `Boolean(x)`; pass them as JS booleans).
 *
 * Transactions are asynchronous at the port so both adapters fit; the body must await only the transaction's own
 * statements (no timers, no network), because on SQLite the transaction holds the one write connection.
 */

/** A value a statement may bind. Booleans become 0/1 on SQLite. */
export type SqlValue = string | number | boolean | null;

/** Statements: `?` placeholders, rows as plain objects keyed by column name (or alias). */
export interface Sql {
  all<T>(text: string, params?: readonly SqlValue[]): Promise<T[]>;
  get<T>(text: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  /** Runs a statement; resolves with the number of rows it changed. */
  run(text: string, params?: readonly SqlValue[]): Promise<number>;
}

/** A statement runner inside a transaction. */
export interface Tx extends Sql {
  /** Sends `payload` on `channel` when (and only if) the transaction commits (PostgreSQL NOTIFY; no-op on SQLite). */
  notify(channel: string, payload: string): Promise<void>;
}

/**
 * Writers that must not interleave across replicas take the same lock: on PostgreSQL an advisory transaction lock,
 * on SQLite the single write connection already serializes every transaction.
 * - `write`: every SDK-visible write (Writer.write): versions follow commit order.
 * - `ingest`: metrics batches (read-merge-upsert of the same minute rows).
 */
export type TransactionLock = 'write' | 'ingest';

export interface TransactionOptions {
  lock?: TransactionLock;
  /** A read-only transaction: one consistent view (SQLite: the read connection; PostgreSQL: REPEATABLE READ). */
  readOnly?: boolean;
}

/** A notification subscription (PostgreSQL LISTEN). */
export interface Subscription {
  unlisten(): Promise<void>;
}

/** The database behind the server. */
export interface StorePort extends Sql {
  readonly dialect: 'sqlite' | 'postgres';
  /** One transaction: committed when `fn` resolves, rolled back when it throws (the error is rethrown). */
  transaction<T>(fn: (tx: Tx) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * Listens on `channel` (PostgreSQL; on SQLite nothing is ever delivered: one process writes and reads).
   * `onListen` runs after every (re-)LISTEN, so a subscriber can catch up with what it missed while disconnected.
   */
  listen(channel: string, onMessage: (payload: string) => void, onListen?: () => void): Promise<Subscription>;
  /** Resolves once everything committed so far is on stable storage (SQLite WAL fsync; PostgreSQL: at once). */
  durable(): Promise<void>;
  /** `durable()` on the calling thread, where the adapter has such a thing (SQLite: the kill switches use it). */
  durableSync?(): void;
  /** Rejects unless the database answers within `timeoutMs`. */
  ping(timeoutMs: number): Promise<void>;
  /** The newest applied migration's timestamp, or null when none (readiness). */
  latestMigration(): Promise<number | null>;
  /** Closes every connection. Idempotent. */
  close(): Promise<void>;
}

/** The database did not answer in time (or is unreachable): the request gets 503 with Retry-After. */
export class DatabaseUnavailableError extends Error {
  override readonly name = 'DatabaseUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Reads a boolean column (0/1 on SQLite, true/false on PostgreSQL). */
export function bool(value: unknown): boolean {
  return value === true || value === 1 || value === '1' || value === 't';
}
