/**
 * Backups taken while the server runs and writes, and restores: refused while a server holds the database, checked
 * before anything is replaced, and never letting a version number an SDK already applied come back with other content.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { backupDatabase, restoreDatabase } from '../../server/storage/backup.js';
import { DatabaseLockedError } from '../../server/storage/db-lock.js';
import { api, startServer, type TestServer } from '../helpers/server.js';

let dir: string;
let srv: TestServer | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'aviary-backup-'));
});
afterEach(async () => {
  await srv?.close();
  srv = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function createFlag(s: TestServer, key: string) {
  const res = await api(s).post('/api/v1/flags', { key, kind: 'boolean' });
  expect(res.status).toBe(201);
}

/** Flips a kill switch until `stop()`; counts acknowledged writes. */
function flipping(s: TestServer, flag: string) {
  let running = true;
  let acknowledged = 0;
  const done = (async () => {
    for (let i = 0; running && i < 2000; i++) {
      const res = await api(s).post(`/api/v1/flags/${flag}/environments/production/${i % 2 === 0 ? 'kill' : 'revive'}`, {});
      expect(res.status).toBe(200);
      acknowledged++;
    }
  })();
  return {
    get acknowledged() {
      return acknowledged;
    },
    async stop() {
      running = false;
      await done;
    },
  };
}

describe('aviary backup', () => {
  it('copies a consistent database while the server keeps writing', async () => {
    srv = await startServer({ dbPath: join(dir, 'aviary.db') });
    await createFlag(srv, 'checkout');
    const load = flipping(srv, 'checkout');
    while (load.acknowledged < 20) await new Promise((r) => setTimeout(r, 5));
    const before = (await api(srv).get('/api/v1/environments')).body.environments.find((e: { key: string }) => e.key === 'production').version;
    const result = await backupDatabase(srv.dbPath, join(dir, 'backup.db'));
    const during = load.acknowledged;
    while (load.acknowledged < during + 5) await new Promise((r) => setTimeout(r, 5));
    await load.stop();
    const after = (await api(srv).get('/api/v1/environments')).body.environments.find((e: { key: string }) => e.key === 'production').version;

    const copy = new Database(result.file, { readonly: true });
    try {
      expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
      const version = copy.prepare<[], { version: number }>("SELECT version FROM environments WHERE key = 'production'").get()!.version;
      expect(version).toBeGreaterThanOrEqual(before);
      expect(version).toBeLessThan(after); // a snapshot of one moment, while writes went on
      expect(result.environments.production).toBeLessThanOrEqual(version);
      // One snapshot: the flag's state agrees with the newest audit entry for it, and the change log with the version.
      const state = copy
        .prepare<[], { enabled: number }>(
          "SELECT json_extract(state, '$.enabled') AS enabled FROM flag_states WHERE flag = 'checkout' AND environment = 'production'",
        )
        .get()!;
      const last = copy
        .prepare<[], { action: string }>(
          "SELECT action FROM audit_log WHERE resource_key = 'checkout' AND environment = 'production' ORDER BY id DESC LIMIT 1",
        )
        .get()!;
      expect(last.action === 'flag.kill' ? 0 : 1).toBe(state.enabled);
      const newest = copy.prepare<[], { v: number }>("SELECT max(version) AS v FROM change_log WHERE environment = 'production'").get()!.v;
      expect(newest).toBe(version);
    } finally {
      copy.close();
    }
  });

  it('refuses to overwrite an existing file', async () => {
    srv = await startServer({ dbPath: join(dir, 'aviary.db') });
    writeFileSync(join(dir, 'keep.db'), 'precious');
    await expect(backupDatabase(srv.dbPath, join(dir, 'keep.db'))).rejects.toThrow(/already exists/);
    expect(readFileSync(join(dir, 'keep.db'), 'utf8')).toBe('precious');
  });
});

describe('aviary restore', () => {
  it('is refused while a server holds the database, and changes nothing', async () => {
    srv = await startServer({ dbPath: join(dir, 'aviary.db') });
    await createFlag(srv, 'checkout');
    await backupDatabase(srv.dbPath, join(dir, 'backup.db'));
    await createFlag(srv, 'after-backup');
    expect(() => restoreDatabase(join(dir, 'backup.db'), srv!.dbPath)).toThrow(DatabaseLockedError);
    expect((await api(srv).get('/api/v1/flags/after-backup')).status).toBe(200);
  });

  it('puts a backup in place; the next boot moves versions past everything SDKs may have seen', async () => {
    const dbPath = join(dir, 'aviary.db');
    srv = await startServer({ dbPath });
    await createFlag(srv, 'checkout');
    await backupDatabase(dbPath, join(dir, 'backup.db'));
    // Writes after the backup: versions SDKs applied that the backup never saw.
    await createFlag(srv, 'after-backup');
    for (let i = 0; i < 5; i++) await api(srv).post(`/api/v1/flags/checkout/environments/production/${i % 2 === 0 ? 'kill' : 'revive'}`, {});
    const live = (await api(srv).get('/api/v1/environments')).body.environments as { key: string; version: number }[];
    await srv.close({ keepData: true });
    srv = undefined;

    const result = restoreDatabase(join(dir, 'backup.db'), dbPath);
    for (const e of live) expect(result.environments[e.key]).toBeGreaterThanOrEqual(e.version);

    srv = await startServer({ dbPath });
    expect((await api(srv).get('/api/v1/flags/checkout')).status).toBe(200);
    expect((await api(srv).get('/api/v1/flags/after-backup')).status).toBe(404);
    const now = (await api(srv).get('/api/v1/environments')).body.environments as { key: string; version: number }[];
    for (const e of live) expect(now.find((n) => n.key === e.key)!.version).toBeGreaterThan(e.version + 999);
    const audit = await api(srv).get('/api/v1/audit?action=server.recover');
    expect(audit.body.entries).toHaveLength(1);
    expect(audit.body.entries[0].reason).toContain('restored from a backup');
    expect(audit.body.entries[0].after.restoredFrom.file).toBe(join(dir, 'backup.db'));
  });

  it('refuses a file that is not an Aviary database and leaves the database as it was', async () => {
    const dbPath = join(dir, 'aviary.db');
    srv = await startServer({ dbPath });
    await createFlag(srv, 'checkout');
    await srv.close({ keepData: true });
    srv = undefined;
    writeFileSync(join(dir, 'notes.txt'), 'not a database at all, just some text that is long enough to have a header'.repeat(10));
    expect(() => restoreDatabase(join(dir, 'notes.txt'), dbPath)).toThrow(/cannot read the backup/);
    const other = new Database(join(dir, 'other.db'));
    other.exec('CREATE TABLE t (x)');
    other.close();
    expect(() => restoreDatabase(join(dir, 'other.db'), dbPath)).toThrow(/not an Aviary database/);
    srv = await startServer({ dbPath });
    expect((await api(srv).get('/api/v1/flags/checkout')).status).toBe(200);
  });
});
