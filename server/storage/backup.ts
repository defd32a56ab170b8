/**
 * Backups of the SQLite store, for `aviary backup` and `aviary restore`.
 *
 * - Backup uses SQLite's online backup API (better-sqlite3 `db.backup`) from a read-only connection of its own: it is
 *   consistent (one snapshot of the database, WAL included) while the server keeps running and writing. The pages
 *   are copied in one step under one read transaction, so a busy writer cannot make the copy start over (SQLite
 *   restarts a stepped backup whenever another connection writes). The copy is written beside the target and renamed
 *   into place, so a crash never leaves a half-written file under the backup's name.
 * - Restore refuses while a server holds the database (the lock of db-lock.ts, taken for the whole restore), checks
 *   the backup (integrity, an Aviary schema), and puts it in place with the same rename. Environment versions in the
 *   restored file are raised to at least those of the database it replaces and the boot that follows moves them past
 *   both (server-state.ts): an SDK that applied a version the backup never saw must resync, never take a reused
 *   version number for the one it has.
 */
import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { lockDatabase } from './db-lock.js';

/** What a backup or restore did, for the CLI to print. */
export interface BackupResult {
  file: string;
  bytes: number;
  environments: Record<string, number>;
}

function environmentVersions(sqlite: Database.Database): Record<string, number> {
  const rows = sqlite.prepare<[], { key: string; version: number }>('SELECT key, version FROM environments ORDER BY key').all();
  return Object.fromEntries(rows.map((r) => [r.key, r.version]));
}

function temporaryBeside(file: string): string {
  return join(dirname(file), `.${basename(file)}.${process.pid}.partial`);
}

/** Copies the database at `dbPath` to `file` (which must not exist), consistently, while a server may be running. */
export async function backupDatabase(dbPath: string, file: string, options: { overwrite?: boolean } = {}): Promise<BackupResult> {
  const target = resolve(file);
  if (resolve(dbPath) === target) throw new Error('the backup file must not be the database itself');
  if (existsSync(target) && !options.overwrite) throw new Error(`${file} already exists (pass --force to replace it)`);
  if (!existsSync(dbPath)) throw new Error(`no database at ${dbPath} (AVIARY_DB)`);
  const source = new Database(dbPath, { readonly: true, fileMustExist: true });
  const partial = temporaryBeside(target);
  try {
    source.pragma('busy_timeout = 5000');
    const environments = environmentVersions(source);
    // Every remaining page in one step: one read transaction, nothing for a concurrent writer to invalidate.
    await source.backup(partial, { progress: () => 0x7fffffff });
    renameSync(partial, target);
    return { file: target, bytes: statSync(target).size, environments };
  } catch (err) {
    rmSync(partial, { force: true });
    throw err;
  } finally {
    source.close();
  }
}

/** Checks that `file` is an intact Aviary database. */
function checkBackup(file: string): void {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma('schema_version'); // reads the header: a file that is not a database fails here
  } catch (err) {
    throw new Error(`cannot read the backup ${file}: ${(err as Error).message}`);
  }
  try {
    const check = db.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw new Error(`the backup ${file} is damaged: ${String(check)}`);
    const tables = new Set(
      db
        .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .all()
        .map((r) => r.name),
    );
    for (const t of ['environments', 'flags', 'flag_states', 'server_state', '__drizzle_migrations']) {
      if (!tables.has(t)) throw new Error(`${file} is not an Aviary database (it has no ${t} table)`);
    }
  } finally {
    db.close();
  }
}

/**
 * Replaces the database at `dbPath` with the backup `file`. Throws `DatabaseLockedError` (db-lock.ts) while a server
 * holds the database, and changes nothing when the backup does not check out.
 */
export function restoreDatabase(file: string, dbPath: string, now: () => number = Date.now): BackupResult {
  const lock = lockDatabase(dbPath);
  const partial = temporaryBeside(resolve(dbPath));
  try {
    checkBackup(file);
    let current: Record<string, number> = {};
    if (existsSync(dbPath)) {
      const live = new Database(dbPath, { readonly: true, fileMustExist: true });
      try {
        current = environmentVersions(live);
      } catch {
        // a damaged database being replaced: nothing to carry over
      } finally {
        live.close();
      }
    }
    const copy = new Database(file, { readonly: true, fileMustExist: true });
    try {
      copy.exec(`VACUUM INTO '${partial.replaceAll("'", "''")}'`);
    } finally {
      copy.close();
    }
    const restored = new Database(partial);
    let environments: Record<string, number>;
    try {
      restored.transaction(() => {
        const raise = restored.prepare('UPDATE environments SET version = max(version, ?) WHERE key = ?');
        for (const [env, version] of Object.entries(current)) raise.run(version, env);
        // Makes the next boot apply the version gap, as after an unclean stop (server-state.ts).
        restored
          .prepare("INSERT INTO server_state (key, value) VALUES ('running', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
          .run(String(now()));
        restored
          .prepare("INSERT INTO server_state (key, value) VALUES ('restored_from', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
          .run(JSON.stringify({ file: resolve(file), at: new Date(now()).toISOString() }));
      })();
      environments = environmentVersions(restored);
    } finally {
      restored.close();
    }
    for (const suffix of ['-wal', '-shm']) rmSync(`${dbPath}${suffix}`, { force: true });
    renameSync(partial, dbPath);
    return { file: resolve(dbPath), bytes: statSync(dbPath).size, environments };
  } catch (err) {
    rmSync(partial, { force: true });
    throw err;
  } finally {
    lock.release();
  }
}
