/**
 * `npm run bench:webhooks`:
 *  1. kill latency (the admin answer, `waitMs=0`) with no webhook against `--hooks` webhooks subscribed to
 *     `flag.killed` (each kill then writes one event and `--hooks` delivery rows in its transaction), in interleaved
 *     rounds (the webhooks are created before and deleted after each "with" round);
 *  2. kill → receiver latency: from sending `POST .../kill` until the receiver got the signed delivery (the first of
 *     the `--hooks` webhooks to arrive, and the last);
 *  3. the worker's throughput: `--burst` kills and revives written back to back with `--hooks` webhooks subscribed to
 *     both, then the time until every delivery arrived (deliveries per second).
 *
 * The server runs in this process (buildApp on a temporary SQLite file, default worker settings); the receiver runs in
 * a child process (this file with `--receiver`), so its work does not share the server's event loop. Times across the
 * two processes use `performance.timeOrigin + performance.now()` (one machine, one clock). Bounded: 180 s hard limit.
 * Options: --rounds 4 --kills 100 --hooks 10 --burst 200
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../server/app.js';

const now = () => performance.timeOrigin + performance.now();

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const median = (v: number[]) => quantile(v, 0.5);
const f1 = (n: number) => n.toFixed(1);

async function main(): Promise<void> {
  const ROUNDS = arg('rounds', 4);
  const KILLS = arg('kills', 100);
  const HOOKS = arg('hooks', 10);
  const BURST = arg('burst', 200);
  const ADMIN = 'bench-admin-token-0123456789abcdef';
  const dir = mkdtempSync(join(tmpdir(), 'aviary-bench-webhooks-'));
  const hardLimit = setTimeout(() => {
    console.error('bench:webhooks: hard time limit reached');
    process.exit(2);
  }, 180_000);
  hardLimit.unref();

  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--receiver'], { execArgv: ['--import', 'tsx', '--conditions=aviary-source'] });
  const arrivals: { at: number; reason: string | null }[] = [];
  const listeners = new Set<() => void>();
  const port = await new Promise<number>((resolve) =>
    child.on('message', (m: { port?: number; at?: number; reason?: string | null }) => {
      if (m.port !== undefined) return resolve(m.port);
      arrivals.push({ at: m.at!, reason: m.reason ?? null });
      for (const l of listeners) l();
    }),
  );
  const hookUrl = `http://127.0.0.1:${port}/hook`;
  const arrived = (count: (a: typeof arrivals) => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (!count(arrivals)) return;
        listeners.delete(check);
        resolve();
      };
      listeners.add(check);
      check();
    });

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
    return res.json().catch(() => null) as Promise<{ id?: string } | null>;
  };
  await call('POST', '/api/v1/flags', { key: 'bench', kind: 'boolean' });
  const subscribe = async (events: string[]) => {
    const ids: string[] = [];
    for (let h = 0; h < HOOKS; h++) ids.push((await call('POST', '/api/v1/webhooks', { url: hookUrl, events, name: `bench-${h}` }))!.id!);
    await new Promise((r) => setTimeout(r, 1100)); // the outbox's "no webhook at all" hint refreshes every second
    return ids;
  };
  const unsubscribe = async (ids: string[]) => {
    for (const id of ids) await call('DELETE', `/api/v1/webhooks/${id}`);
    await new Promise((r) => setTimeout(r, 1100));
  };

  /** One round of kills; with webhooks, also when the first and the last of each kill's deliveries arrived. */
  async function round(label: string, withHooks: boolean) {
    const kill: number[] = [];
    const first: number[] = [];
    const last: number[] = [];
    for (let i = 0; i < KILLS; i++) {
      await call('POST', '/api/v1/flags/bench/environments/production/revive', {});
      const reason = `${label}-${i}`;
      const all = withHooks ? arrived((a) => a.filter((x) => x.reason === reason).length >= HOOKS) : null;
      const t0 = now();
      await call('POST', '/api/v1/flags/bench/environments/production/kill?waitMs=0', { reason });
      kill.push(now() - t0);
      if (all) {
        await all;
        const times = arrivals.filter((x) => x.reason === reason).map((x) => x.at - t0);
        first.push(Math.min(...times));
        last.push(Math.max(...times));
      }
    }
    return { kill, first, last };
  }

  const killNone: number[] = [];
  const killHooks: number[] = [];
  const firstP99: number[] = [];
  const lastP99: number[] = [];
  const p50s: { none: number[]; hooks: number[]; first: number[] } = { none: [], hooks: [], first: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? [false, true] : [true, false];
    for (const withHooks of order) {
      const ids = withHooks ? await subscribe(['flag.killed']) : [];
      const res = await round(`r${r}-${withHooks ? 'hooks' : 'none'}`, withHooks);
      if (withHooks) {
        killHooks.push(quantile(res.kill, 0.99));
        p50s.hooks.push(quantile(res.kill, 0.5));
        firstP99.push(quantile(res.first, 0.99));
        p50s.first.push(quantile(res.first, 0.5));
        lastP99.push(quantile(res.last, 0.99));
        await unsubscribe(ids);
      } else {
        killNone.push(quantile(res.kill, 0.99));
        p50s.none.push(quantile(res.kill, 0.5));
      }
      console.log(
        `round ${r} ${withHooks ? `${HOOKS} webhooks` : 'no webhook'}: kill p50 ${f1(quantile(res.kill, 0.5))} ms, p99 ${f1(quantile(res.kill, 0.99))} ms` +
          (withHooks ? `; receiver first p99 ${f1(quantile(res.first, 0.99))} ms, all ${HOOKS} p99 ${f1(quantile(res.last, 0.99))} ms` : ''),
      );
    }
  }

  // Throughput: a burst of kills and revives, every one to every webhook.
  const ids = await subscribe(['flag.killed', 'flag.revived']);
  arrivals.length = 0;
  const expected = BURST * 2 * HOOKS;
  const done = arrived((a) => a.length >= expected);
  const t0 = now();
  for (let i = 0; i < BURST; i++) {
    await call('POST', '/api/v1/flags/bench/environments/production/revive', { reason: `burst-${i}` });
    await call('POST', '/api/v1/flags/bench/environments/production/kill', { reason: `burst-${i}` });
  }
  const written = now() - t0;
  await done;
  const total = Math.max(...arrivals.map((x) => x.at)) - t0;
  await unsubscribe(ids);

  const load = (await import('node:os')).loadavg()[0]!.toFixed(1);
  console.log(`\n## bench:webhooks (${ROUNDS} interleaved rounds × ${KILLS} kills; load average ${load})\n`);
  console.log('| measurement | result |');
  console.log('|---|---|');
  console.log(`| kill answer, no webhook | p50 ${f1(median(p50s.none))} ms, p99 ${f1(median(killNone))} ms (median of the rounds' p99s) |`);
  console.log(
    `| kill answer, ${HOOKS} webhooks subscribed | p50 ${f1(median(p50s.hooks))} ms, p99 ${f1(median(killHooks))} ms (${f1(median(killHooks) / median(killNone))}× the p99 without) |`,
  );
  console.log(`| kill → receiver, first of the ${HOOKS} deliveries | p50 ${f1(median(p50s.first))} ms, p99 ${f1(median(firstP99))} ms |`);
  console.log(`| kill → receiver, all ${HOOKS} deliveries | p99 ${f1(median(lastP99))} ms |`);
  console.log(
    `| worker throughput | ${expected} deliveries (${BURST} kills + ${BURST} revives × ${HOOKS} webhooks) in ${f1(total / 1000)} s from the first write (writes took ${f1(written / 1000)} s): ${Math.round((expected / total) * 1000)} deliveries/s |`,
  );
  await app.close();
  child.disconnect();
  rmSync(dir, { recursive: true, force: true });
}

if (process.argv.includes('--receiver')) {
  // The receiver: answers 200 and tells the parent when each delivery arrived, and which reason it carried.
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const at = now();
      res.writeHead(200).end();
      const payload = JSON.parse(body) as { data?: { reason?: string } };
      process.send?.({ at, reason: payload.data?.reason ?? null });
    });
  });
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }));
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}
