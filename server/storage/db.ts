/**
 * Opening the database: pragmas, drizzle, migrations. Synchronous on purpose: `main.ts` migrates before it listens.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import * as schema from './schema.js';
import { lockDatabase, type DatabaseLock } from './db-lock.js';
import { migrationsFolder } from './migrations.js';

/** The drizzle database with Aviary's schema. */
export type AviaryDb = BetterSQLite3Database<typeof schema>;

/** An open database: the drizzle handle and the raw better-sqlite3 connection under it. */
export interface OpenDatabase {
  db: AviaryDb;
  sqlite: Database.Database;
  /** Closes the connection and releases the file's lock (db-lock.ts). Idempotent. */
  close(): void;
}

/**
 * Where the generated SQLite migrations live (repo root `migrations/sqlite/`; PostgreSQL's are in `migrations/postgres/`).
 * Moving them from `migrations/` kept existing databases valid: drizzle records each migration's SHA-256 of the SQL
 * text and its journal `when`, neither of which depends on the folder.
 */
export const MIGRATIONS_FOLDER = migrationsFolder('sqlite');

/**
 * Opens (creating if needed) the SQLite file at `path` and applies pending migrations.
 *
 * - `journal_mode=WAL`: readers (SDK snapshot, evaluate) never block the writer, and a commit is one append.
 * - `synchronous=NORMAL`: COMMIT appends to the WAL without an fsync, so it survives a crashed or killed process.
 *   Surviving power loss is done per acknowledgement instead: write routes await `WalSync.durable()` (wal-sync.ts),
 *   an fsync of the WAL on the thread pool, before answering. Same guarantee as FULL for everything acknowledged,
 *   without blocking the event loop (and SDK traffic) for the fsync.
 * - `foreign_keys=ON`: flag states, tokens and canaries cannot point at environments or flags that do not exist.
 * - `busy_timeout=5000`: another process (a backup, the sqlite3 shell) holding a lock makes us wait, not fail.
 * - Checkpoints run on a worker thread (checkpointer.ts), not inside whichever COMMIT crosses the threshold.
 * - One server per file: an exclusive lock is taken first (db-lock.ts), and a second server on the same file is
 *   refused at once with a message naming the holder (`DatabaseLockedError`).
 */
export function openDatabase(path: string, options: { migrate?: boolean } = {}): OpenDatabase {
  let lock: DatabaseLock | undefined;
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true });
    lock = lockDatabase(path);
  }
  try {
    return open(path, options, lock);
  } catch (err) {
    lock?.release();
    throw err;
  }
}

function open(path: string, options: { migrate?: boolean }, lock: DatabaseLock | undefined): OpenDatabase {
  const sqlite = new Database(path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  // After a burst of writes the WAL is truncated back to this size once checkpointed (else it keeps its peak size).
  sqlite.pragma('journal_size_limit = 16777216');
  const db = drizzle(sqlite, { schema });
  try {
    if (options.migrate !== false) migrate(db, { migrationsFolder: MIGRATIONS_FOLDER });
  } catch (err) {
    sqlite.close();
    throw err;
  }
  return {
    db,
    sqlite,
    close() {
      if (sqlite.open) sqlite.close();
      lock?.release();
    },
  };
}
