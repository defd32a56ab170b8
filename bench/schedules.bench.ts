/**
 * `npm run bench:schedules`: the firing delay of scheduled changes, from a schedule's `at` until every connected SDK
 * has applied the change it makes (the client's `change` event for that flag).
 *
 * One server (buildApp on a temporary SQLite file, the runner at its default 1 s poll) and `--clients` SDK clients in
 * this process; `--schedules` kill/revive schedules on `--flags` flags, their times spread `--spacingMs` apart and
 * created `--leadMs` ahead (so the runner knows them in advance, as in real use). Bounded: at most
 * schedules × spacing + 30 s. Options: --clients 50 --schedules 60 --flags 6 --spacingMs 150 --leadMs 3000
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { buildApp } from '../server/app.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

const CLIENTS = arg('clients', 50);
const SCHEDULES = arg('schedules', 60);
const FLAGS = arg('flags', 6);
const SPACING = arg('spacingMs', 150);
const LEAD = arg('leadMs', 3000);
const ADMIN = 'bench-admin-token-0123456789abcdef';
const SDK_KEY = 'bench-sdk-key-production-0123456789';

const dir = mkdtempSync(join(tmpdir(), 'aviary-bench-schedules-'));
const hardLimit = setTimeout(
  () => {
    console.error('bench:schedules: hard time limit reached');
    process.exit(2);
  },
  SCHEDULES * SPACING + LEAD + 30_000,
);
hardLimit.unref();

const app = await buildApp({ dbPath: join(dir, 'aviary.db'), adminToken: ADMIN, sdkKeys: { production: SDK_KEY } });
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
if (!address || typeof address === 'string') throw new Error('no address');
const baseUrl = `http://127.0.0.1:${address.port}`;
const call = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(baseUrl + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json() as Promise<{ id: string }>;
};

const flags = Array.from({ length: FLAGS }, (_, i) => `bench-sched-${i}`);
for (const key of flags) {
  await call('POST', '/api/v1/flags', { key, kind: 'boolean' });
  await call('POST', `/api/v1/flags/${key}/environments/production/revive`);
}

// Per schedule: its flag, its time, and when each client applied it.
interface Pending {
  flag: string;
  at: number;
  applied: number[];
  /** The clients that applied it. */
  seen: Set<number>;
}
const byFlag = new Map<string, Pending[]>();
const clients: AviaryClient[] = [];
for (let i = 0; i < CLIENTS; i++) {
  const c = createClient({ baseUrl, sdkKey: SDK_KEY, flushIntervalMs: 0 });
  c.on('change', (keys: string[]) => {
    const t = Date.now();
    for (const k of keys) {
      // The oldest schedule of the flag this client has not applied yet.
      const p = byFlag.get(k)?.find((x) => !x.seen.has(i));
      if (!p) continue;
      p.seen.add(i);
      p.applied.push(t);
    }
  });
  clients.push(c);
}
await Promise.all(clients.map((c) => c.ready()));

const start = Date.now() + LEAD;
const schedules: Pending[] = [];
for (let i = 0; i < SCHEDULES; i++) {
  const flag = flags[i % FLAGS]!;
  // Each flag alternates kill, revive, kill, ... so every schedule changes something.
  const action = Math.floor(i / FLAGS) % 2 === 0 ? 'kill' : 'revive';
  const at = start + i * SPACING;
  const p: Pending = { flag, at, applied: [], seen: new Set() };
  schedules.push(p);
  const list = byFlag.get(flag) ?? [];
  list.push(p);
  byFlag.set(flag, list);
  await call('POST', `/api/v1/flags/${flag}/environments/production/schedules`, { at, action });
}

const deadline = start + SCHEDULES * SPACING + 10_000;
while (Date.now() < deadline && schedules.some((s) => s.applied.length < CLIENTS)) await new Promise((r) => setTimeout(r, 50));

const complete = schedules.filter((s) => s.applied.length === CLIENTS);
const allApplied = complete.map((s) => Math.max(...s.applied) - s.at);
const firstApplied = complete.map((s) => Math.min(...s.applied) - s.at);
console.log(
  `bench:schedules: ${complete.length}/${SCHEDULES} schedules applied by all ${CLIENTS} SDKs (flags ${FLAGS}, spacing ${SPACING} ms, created ${LEAD} ms ahead)`,
);
if (allApplied.length) {
  console.log(
    `  at → every SDK applied: p50 ${quantile(allApplied, 0.5)} ms, p99 ${quantile(allApplied, 0.99)} ms, max ${Math.max(...allApplied)} ms`,
  );
  console.log(`  at → first SDK applied: p50 ${quantile(firstApplied, 0.5)} ms, p99 ${quantile(firstApplied, 0.99)} ms`);
}

await Promise.all(clients.map((c) => c.close()));
await app.close();
rmSync(dir, { recursive: true, force: true });
clearTimeout(hardLimit);
process.exit(complete.length === SCHEDULES ? 0 : 1);
