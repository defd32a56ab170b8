/**
 * One server per SQLite file: a second server on the same database is refused at boot, names the process holding it,
 * and changes nothing; the lock dies with its process, so a crashed server never blocks the next start.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { DatabaseLockedError } from '../../server/storage/db-lock.js';
import { spawnServer, type ChildServer } from '../helpers/child-server.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ADMIN = 'db-lock-admin-token-0123456789';

/** Runs `server/main.ts` to its exit (it is expected to refuse to start); answers its exit code and stderr. */
function bootToExit(dbPath: string): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=aviary-source', 'server/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, AVIARY_DB: dbPath, AVIARY_PORT: '0', AVIARY_HOST: '127.0.0.1', AVIARY_ADMIN_TOKEN: ADMIN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    }),
  );
}

async function versions(url: string): Promise<Record<string, number>> {
  const res = await fetch(`${url}/api/v1/environments`, { headers: { authorization: `Bearer ${ADMIN}` } });
  const body = (await res.json()) as { environments: { key: string; version: number }[] };
  return Object.fromEntries(body.environments.map((e) => [e.key, e.version]));
}

let dir: string;
let first: ChildServer | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'aviary-lock-'));
});
afterEach(async () => {
  if (first && first.child.exitCode === null && first.child.signalCode === null) {
    first.child.kill('SIGKILL');
    await first.exited;
  }
  first = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('one server per SQLite file', () => {
  it('refuses a second server on the same file, naming the holder, and the first is untouched', async () => {
    const dbPath = join(dir, 'aviary.db');
    first = await spawnServer(dbPath, { AVIARY_ADMIN_TOKEN: ADMIN });
    const before = await versions(first.url);

    const second = await bootToExit(dbPath);
    expect(second.code).toBe(3);
    expect(second.stderr).toContain(dbPath);
    expect(second.stderr).toContain(`process ${first.child.pid} `);
    expect(second.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
    expect(second.stdout).not.toContain('listening');

    // The refused boot changed nothing: no version bump, and the first server still serves.
    expect(await versions(first.url)).toEqual(before);
  });

  it('is refused within one process too (a second app on an open file)', async () => {
    const dbPath = join(dir, 'aviary.db');
    const app = await buildApp({ dbPath, adminToken: ADMIN });
    try {
      const err = await buildApp({ dbPath, adminToken: ADMIN }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DatabaseLockedError);
      expect((err as DatabaseLockedError).owner?.pid).toBe(process.pid);
    } finally {
      await app.close();
    }
    // Closed: the file can be opened again.
    const again = await buildApp({ dbPath, adminToken: ADMIN });
    await again.close();
  });

  it('a killed server leaves no stale lock: the next one starts at once', async () => {
    const dbPath = join(dir, 'aviary.db');
    first = await spawnServer(dbPath, { AVIARY_ADMIN_TOKEN: ADMIN });
    first.child.kill('SIGKILL');
    await first.exited;
    first = await spawnServer(dbPath, { AVIARY_ADMIN_TOKEN: ADMIN });
    expect(Object.keys(await versions(first.url))).toContain('production');
  });

  it('a file that is not a database fails the boot with its path and the likely cause', async () => {
    const dbPath = join(dir, 'garbage.db');
    writeFileSync(dbPath, 'this is not a sqlite database, it is a text file that is long enough'.repeat(20));
    const res = await bootToExit(dbPath);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`cannot open the database ${dbPath}`);
    expect(res.stderr).toContain('restore it from a backup');
    // Refusing did not leave the lock held.
    const d = new Database(`${dbPath}.lock`, { timeout: 0 });
    d.pragma('locking_mode = EXCLUSIVE');
    expect(() => d.exec('BEGIN EXCLUSIVE; COMMIT;')).not.toThrow();
    d.close();
  });
});
