/**
 * `npm start` is what a service manager runs, and SIGTERM to the process it started is what systemd and container
 * runtimes send: the server must drain and stop, not keep running behind npm, holding the port and the database.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'aviary-npm-start-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `npm start` (pre-scripts skipped: the console build is not what is under test) until it listens. */
async function npmStart(dbPath: string) {
  const child = spawn('npm', ['start', '--ignore-scripts', '--silent'], {
    cwd: ROOT,
    env: { ...process.env, AVIARY_DB: dbPath, AVIARY_PORT: '0', AVIARY_HOST: '127.0.0.1', AVIARY_ADMIN_TOKEN: 'npm-start-admin-token-0123' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`npm start did not listen in 25 s:\n${out}`)), 25_000);
    const check = () => {
      const m = /"address":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', check);
  });
  return { child, url, exited, output: () => out };
}

const reachable = (url: string) =>
  fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) }).then(
    () => true,
    () => false,
  );

describe('npm start', () => {
  it('stops the server on SIGTERM to the npm process, cleanly (the next boot finds no unclean stop)', async () => {
    const dbPath = join(dir, 'aviary.db');
    const first = await npmStart(dbPath);
    expect(await reachable(first.url)).toBe(true);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    // The server itself is gone: nothing answers on its port any more.
    await expect.poll(() => reachable(first.url), { timeout: 5000 }).toBe(false);
    expect(first.output()).toContain('shutting down');

    const second = await npmStart(dbPath);
    try {
      expect(second.output()).not.toContain('did not stop cleanly');
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });
});
