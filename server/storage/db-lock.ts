/**
 * One server per SQLite file. Two servers on the same file would each think they own it: revocations and kills written
 * by one never reach the other's SDKs, and both bump versions at boot. Replicas belong on PostgreSQL.
 *
 * The lock is an operating-system lock (POSIX `fcntl`, taken by SQLite itself) on a small side file, `<db>.lock`, held
 * open in SQLite's EXCLUSIVE locking mode for the life of the process. The kernel releases it when the process dies,
 * however it dies, so a crashed server never leaves a stale lock behind (unlike a PID file). Who holds it is written
 * beside it (`<db>.lock.json`) for the refusal message; that file is informational only.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import Database from 'better-sqlite3';

/** What the holder writes beside the lock, for the message another process prints. */
export interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
}

/** The database is held by another process (or another open handle in this one). */
export class DatabaseLockedError extends Error {
  readonly code = 'AVIARY_DB_LOCKED';
  constructor(
    readonly path: string,
    readonly owner: LockOwner | null,
  ) {
    const who = owner ? `process ${owner.pid} on ${owner.host}, running since ${owner.startedAt}` : 'another process';
    super(
      `the database ${path} is in use by ${who}. Only one Aviary server may use a SQLite file: stop the other one, ` +
        'or point AVIARY_DB at another file (several replicas need PostgreSQL: AVIARY_DATABASE_URL).',
    );
    this.name = 'DatabaseLockedError';
  }
}

/** A held lock; `release()` is idempotent. */
export interface DatabaseLock {
  release(): void;
}

function readOwner(path: string): LockOwner | null {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    return typeof o.pid === 'number' && typeof o.host === 'string' && typeof o.startedAt === 'string'
      ? { pid: o.pid, host: o.host, startedAt: o.startedAt }
      : null;
  } catch {
    return null;
  }
}

/** Takes the exclusive lock for the database at `dbPath`, or throws {@link DatabaseLockedError} at once (no waiting). */
export function lockDatabase(dbPath: string): DatabaseLock {
  const lockPath = `${dbPath}.lock`;
  const ownerPath = `${lockPath}.json`;
  const handle = new Database(lockPath, { timeout: 0 });
  try {
    handle.pragma('locking_mode = EXCLUSIVE');
    handle.pragma('journal_mode = OFF');
    // In EXCLUSIVE locking mode the lock taken by this transaction is kept after COMMIT, until the handle closes.
    handle.exec('BEGIN EXCLUSIVE; COMMIT;');
  } catch (err) {
    handle.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new DatabaseLockedError(dbPath, readOwner(ownerPath));
    throw err;
  }
  const owner: LockOwner = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  try {
    writeFileSync(ownerPath, `${JSON.stringify(owner)}\n`);
  } catch {
    // informational only: a read-only directory must not stop the server
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      rmSync(ownerPath, { force: true });
      handle.close();
    },
  };
}
