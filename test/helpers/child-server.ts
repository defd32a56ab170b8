/**
 * Runs `server/main.ts` in a child process (as `npm start` does) on 127.0.0.1 with an ephemeral port, for tests that
 * need a real process boundary: SIGKILL during writes, SIGTERM draining, boot output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ChildServer {
  url: string;
  child: ChildProcess;
  /** Everything the process wrote to stdout so far. */
  stdout(): string;
  /** Resolves with the exit code or signal once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns the server with `AVIARY_DB=dbPath`, `AVIARY_PORT=0` and `env`; resolves once it listens. */
export async function spawnServer(dbPath: string, env: Record<string, string> = {}, timeoutMs = 20_000): Promise<ChildServer> {
  // Node itself with tsx's loader, not the `tsx` CLI: the CLI runs the server in a grandchild process, so a SIGKILL
  // sent to it would kill only the wrapper and leave the server running.
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=aviary-source', 'server/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, AVIARY_DB: dbPath, AVIARY_PORT: '0', AVIARY_HOST: '127.0.0.1', AVIARY_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start in ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`));
    }, timeoutMs);
    const check = () => {
      const m = /"address":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        resolve(m[1]);
      }
    };
    child.stdout!.on('data', check);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening\nstdout: ${out}\nstderr: ${err}`));
    });
  });
  return { url, child, stdout: () => out, exited };
}
