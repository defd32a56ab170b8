/**
 * A relay as a separate process (`server/relay/relay-main.ts`, as `npm run relay` runs it), for the relay tree tests:
 * each relay on its own 127.0.0.x address, crashed with SIGKILL or stopped with SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');

export interface RelayProcess {
  url: string;
  child: ChildProcess;
  crash(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a relay of `upstream` on `host:port` with `token` and the cache `cacheDir`; resolves once `/healthz` answers. */
export async function startRelayProcess(o: {
  host: string;
  port: number;
  upstream: string;
  token: string;
  cacheDir: string;
  env?: Record<string, string>;
}): Promise<RelayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=aviary-source', join(root, 'server/relay/relay-main.ts')], {
    cwd: root,
    env: {
      ...process.env,
      AVIARY_HOST: o.host,
      AVIARY_PORT: String(o.port),
      AVIARY_UPSTREAM: o.upstream,
      AVIARY_RELAY_TOKEN: o.token,
      AVIARY_RELAY_CACHE: o.cacheDir,
      AVIARY_LOG_LEVEL: 'error',
      ...o.env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://${o.host}:${o.port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`relay exited with ${child.exitCode}`);
    try {
      if ((await fetch(url + '/healthz')).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('relay did not start');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
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
