/**
 * Replicas for tests: real server processes (server/main.ts) on one PostgreSQL, each on its own loopback address, and
 * the small helpers the replica tests share (admin calls by URL, waiting for a condition).
 */
import { freePort, PROCESS_ADMIN_TOKEN, startServerProcess, type ServerProcess } from '../stream/server-process.js';

/** Starts a replica on `host` (127.0.0.x) against `databaseUrl`; `env` adds or overrides variables. */
export async function startReplica(databaseUrl: string, host: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  return startServerProcess(await freePort(), '', {
    AVIARY_HOST: host,
    AVIARY_DATABASE_URL: databaseUrl,
    AVIARY_REPLICA_POLL_MS: '500',
    ...env,
  });
}

/** An admin API call to `base` with the process admin token; the body parsed as JSON. */
export async function call(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${PROCESS_ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as any) : undefined };
}

/** Resolves once `check` holds; fails naming `what` after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
