/**
 * The real server as a separate process (`server/main.ts`, as `npm start` runs it), for tests and benchmarks that
 * crash it with SIGKILL or must not share a CPU-bound event loop with their clients.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');

export const PROCESS_ADMIN_TOKEN = 'process-admin-token-0123456789abcdef';
export const PROCESS_SDK_KEY = 'process-sdk-key-production-0123456789';

/** A free TCP port on 127.0.0.1 (so a restarted server can come back on the same one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export interface ServerProcess {
  url: string;
  adminToken: string;
  sdkKey: string;
  child: ChildProcess;
  /** SIGKILL: no drain, no goodbye to the streams. */
  crash(): Promise<void>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
}

/** Starts `server/main.ts` on `port` with the database `dbPath`; resolves once `/healthz` answers. */
export async function startServerProcess(port: number, dbPath: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=aviary-source', join(root, 'server/main.ts')], {
    cwd: root,
    env: {
      ...process.env,
      AVIARY_HOST: '127.0.0.1',
      AVIARY_PORT: String(port),
      AVIARY_DB: dbPath,
      AVIARY_ADMIN_TOKEN: PROCESS_ADMIN_TOKEN,
      AVIARY_SDK_KEY_PRODUCTION: PROCESS_SDK_KEY,
      AVIARY_LOG_LEVEL: 'error',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://${env.AVIARY_HOST ?? '127.0.0.1'}:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await fetch(url + '/healthz')).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('server did not start');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    adminToken: PROCESS_ADMIN_TOKEN,
    sdkKey: PROCESS_SDK_KEY,
    child,
    async crash() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
