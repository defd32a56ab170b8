/**
 * The SQLite adapter of the store port (the default: one process, one file).
 *
 * Two connections to the file: the write connection runs every transaction (BEGIN IMMEDIATE ... COMMIT, one at a time:
 * a transaction's body awaits between statements, so the next one waits in a queue rather than joining it), and a
 * read connection runs every statement outside a transaction. In WAL mode a reader sees only committed data, so a
 * request reading while a write is half done never sees its first half. (An in-memory database has one connection.)
 *
 * Durability: commits are appended to the WAL without an fsync (`synchronous=NORMAL`), and `durable()` fsyncs the WAL
 * off the event loop before a write is acknowledged (wal-sync.ts); checkpoints run on a worker (checkpointer.ts).
 */
import Database from 'better-sqlite3';
import { Checkpointer } from './checkpointer.js';
import { openDatabase, type OpenDatabase } from './db.js';
import type { StorePort, Subscription, SqlValue, TransactionOptions, Tx } from './port.js';
import { WalSync, type FsyncStats } from './wal-sync.js';

type Statement = Database.Statement<unknown[], unknown>;

/** Statements of one connection, prepared once per SQL text. */
class Connection {
  private readonly cache = new Map<string, Statement>();
  constructor(readonly sqlite: Database.Database) {}

  private prepare(text: string): Statement {
    let stmt = this.cache.get(text);
    if (!stmt) {
      stmt = this.sqlite.prepare(text);
      this.cache.set(text, stmt);
    }
    return stmt;
  }

  all<T>(text: string, params: readonly SqlValue[] = []): T[] {
    return this.prepare(text).all(...bind(params)) as T[];
  }

  get<T>(text: string, params: readonly SqlValue[] = []): T | undefined {
    return this.prepare(text).get(...bind(params)) as T | undefined;
  }

  run(text: string, params: readonly SqlValue[] = []): number {
    const stmt = this.prepare(text);
    // A statement with RETURNING must be stepped through `get`/`all`; `run` is for the rest.
    if (stmt.reader) return stmt.all(...bind(params)).length;
    return stmt.run(...bind(params)).changes;
  }
}

function bind(params: readonly SqlValue[]): unknown[] {
  return params.map((p) => (p === true ? 1 : p === false ? 0 : p));
}

/** Options of {@link openSqlite}. */
export interface SqliteOptions {
  /** Run pending migrations (default true). */
  migrate?: boolean;
  log?: { warn: (obj: unknown, msg: string) => void };
}

/** The SQLite adapter; besides the port it exposes what only SQLite has (the file, WAL fsyncs, backups). */
export class SqlitePort implements StorePort {
  readonly dialect = 'sqlite' as const;
  readonly sqlite: Database.Database;
  private readonly writer: Connection;
  private readonly reader: Connection;
  private readonly walSync: WalSync;
  private checkpointer: Checkpointer | null;
  /** Tail of the transaction queue: each transaction starts when the previous one has finished. */
  private queue: Promise<unknown> = Promise.resolve();
  private readQueue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly database: OpenDatabase,
    log: SqliteOptions['log'] = console,
  ) {
    this.sqlite = database.sqlite;
    this.writer = new Connection(this.sqlite);
    if (this.sqlite.memory) this.reader = this.writer;
    else {
      const readConnection = new Database(this.sqlite.name, { readonly: true });
      readConnection.pragma('busy_timeout = 5000');
      this.reader = new Connection(readConnection);
    }
    this.walSync = new WalSync(this.sqlite);
    this.checkpointer = Checkpointer.start(this.sqlite, log);
  }

  /** The drizzle handle and raw connection (SQLite-only features: backups, the lock file). */
  get open(): OpenDatabase {
    return this.database;
  }

  all<T>(text: string, params?: readonly SqlValue[]): Promise<T[]> {
    try {
      return Promise.resolve(this.reader.all<T>(text, params));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  get<T>(text: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    try {
      return Promise.resolve(this.reader.get<T>(text, params));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** A statement outside a transaction still queues behind the open one (it must not become part of it). */
  run(text: string, params?: readonly SqlValue[]): Promise<number> {
    return this.transaction((tx) => tx.run(text, params));
  }

  transaction<T>(fn: (tx: Tx) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const readOnly = options.readOnly === true && this.reader !== this.writer;
    const connection = readOnly ? this.reader : this.writer;
    const tx: Tx = {
      all: (text, params) => Promise.resolve(connection.all(text, params)),
      get: (text, params) => Promise.resolve(connection.get(text, params)),
      run: (text, params) => Promise.resolve(connection.run(text, params)),
      notify: () => Promise.resolve(),
    };
    const body = async (): Promise<T> => {
      connection.sqlite.exec(readOnly ? 'BEGIN' : 'BEGIN IMMEDIATE');
      try {
        const value = await fn(tx);
        connection.sqlite.exec('COMMIT');
        return value;
      } catch (err) {
        if (connection.sqlite.inTransaction) connection.sqlite.exec('ROLLBACK');
        throw err;
      }
    };
    const previous = readOnly ? this.readQueue : this.queue;
    const result = previous.then(body, body);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    if (readOnly) this.readQueue = settled;
    else this.queue = settled;
    return result;
  }

  listen(): Promise<Subscription> {
    return Promise.resolve({ unlisten: () => Promise.resolve() });
  }

  durable(): Promise<void> {
    return this.walSync.durable();
  }

  /** `durable()` on the calling thread (the kill switches: see wal-sync.ts). */
  durableSync(): void {
    this.walSync.durableSync();
  }

  /** Durations of the WAL fsyncs behind `durable()` (`aviary_wal_fsync_seconds`). */
  get fsyncStats(): Readonly<FsyncStats> {
    return this.walSync.stats;
  }

  ping(): Promise<void> {
    if (!this.sqlite.open) return Promise.reject(new Error('the database is closed'));
    return Promise.resolve();
  }

  latestMigration(): Promise<number | null> {
    const row = this.reader.get<{ at: number | null }>('SELECT max(created_at) AS at FROM __drizzle_migrations');
    return Promise.resolve(row?.at ?? null);
  }

  /** Waits for the open transactions, checkpoints, closes both connections and releases the file lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    this.walSync.close();
    await this.checkpointer?.stop();
    this.checkpointer = null;
    if (this.reader !== this.writer && this.reader.sqlite.open) this.reader.sqlite.close();
    this.database.close();
  }
}

/** Opens (creating and migrating) the SQLite file at `path` behind the store port. */
export function openSqlite(path: string, options: SqliteOptions = {}): SqlitePort {
  const database = openDatabase(path, { migrate: options.migrate !== false });
  try {
    return new SqlitePort(database, options.log);
  } catch (err) {
    database.close();
    throw err;
  }
}
