/**
 * `npm run bench:webhooks`: (1) kill → receiver latency: from sending `POST .../kill` until a receiver on 127.0.0.1
 * got the signed delivery; (2) kill latency (the admin answer, `waitMs=0`) with no webhook versus `--hooks` webhooks
 * subscribed to `flag.killed` (each kill then writes one event and `--hooks` delivery rows in its transaction).
 *
 * One server (buildApp on a temporary SQLite file, default worker settings) in this process, receivers in this process.
 * `--kills` kill/revive pairs per phase, run one after the other. Bounded: 120 s hard limit.
 * Options: --kills 200 --hooks 10
 */
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../server/app.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const fmt = (v: number[]) =>
  `p50 ${quantile(v, 0.5).toFixed(2)} ms, p99 ${quantile(v, 0.99).toFixed(2)} ms, max ${Math.max(...v).toFixed(2)} ms (n=${v.length})`;

const KILLS = arg('kills', 200);
const HOOKS = arg('hooks', 10);
const ADMIN = 'bench-admin-token-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'aviary-bench-webhooks-'));
const hardLimit = setTimeout(() => {
  console.error('bench:webhooks: hard time limit reached');
  process.exit(2);
}, 120_000);
hardLimit.unref();

// Receivers: resolve the waiter of the event whose reason they carry.
const waiting = new Map<string, (at: number) => void>();
const receiver = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const at = performance.now();
    res.writeHead(200).end();
    const reason = (JSON.parse(body) as { data: { reason: string } }).data.reason;
    waiting.get(reason)?.(at);
    waiting.delete(reason);
  });
});
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

const app = await buildApp({ dbPath: join(dir, 'aviary.db'), adminToken: ADMIN, sdkKeys: {} });
await app.listen({ port: 0, host: '127.0.0.1' });
const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
const call = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(baseUrl + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json().catch(() => null);
};
await call('POST', '/api/v1/flags', { key: 'bench', kind: 'boolean' });

async function killLatencies(label: string, n: number, onKill?: (reason: string) => Promise<number>): Promise<number[]> {
  const kill: number[] = [];
  const delivered: number[] = [];
  for (let i = 0; i < n; i++) {
    await call('POST', '/api/v1/flags/bench/environments/production/revive', {});
    const reason = `${label}-${i}`;
    const arrived = onKill?.(reason);
    const t0 = performance.now();
    await call('POST', '/api/v1/flags/bench/environments/production/kill?waitMs=0', { reason });
    kill.push(performance.now() - t0);
    if (arrived) delivered.push((await arrived) - t0);
  }
  if (delivered.length) console.log(`kill → receiver (${label}): ${fmt(delivered)}`);
  return kill;
}

const none = await killLatencies('none', KILLS);
console.log(`kill answer, no webhook: ${fmt(none)}`);
for (let h = 0; h < HOOKS; h++) await call('POST', '/api/v1/webhooks', { url: hookUrl, events: ['flag.killed'], name: `bench-${h}` });
await new Promise((r) => setTimeout(r, 1100)); // the outbox's "no webhook" hint refreshes
const withHooks = await killLatencies(`hooks${HOOKS}`, KILLS, (reason) => new Promise((resolve) => waiting.set(reason, resolve)));
console.log(`kill answer, ${HOOKS} webhooks subscribed: ${fmt(withHooks)}`);

await app.close();
receiver.close();
rmSync(dir, { recursive: true, force: true });
