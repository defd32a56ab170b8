/**
 * `npm run bench:relay`: the relay tier against one server, in the same run (docs/relay.md, "Sizing").
 *
 *  - Kill → N subscribers behind 2 relays (server → relay ×2 → N/2 subscribers each, environment `staging`) against
 *    the same N subscribers on the server directly (environment `production`), in interleaved rounds: a kill or
 *    revive in `production` is measured at the direct subscribers, one in `staging` at the relayed ones. From the
 *    API call until each subscriber received the delta; p50/p99 per round, medians of the rounds, ratio.
 *  - Memory per SDK connection: the server's RSS before and after its N direct subscribers connected, against each
 *    relay's RSS before and after its N/2 (from /proc, so server and relay are measured the same way).
 *  - CPU per change per 1,000 connections: the server's CPU (utime + stime from /proc) over its rounds, and the two
 *    relays' over theirs (the server's share of a relayed change is the two relay connections), / changes / (N/1000).
 *
 * Subscribers are raw websocket clients speaking the protocol (hello, hydrate, deltas, acks), as bench:stream's, in
 * two child processes (one per core); every process runs on 127.0.0.1. Bounded: a hard limit kills everything.
 * Options: --rounds 5 --subscribers 10000.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const median = (v: number[]) => quantile(v, 0.5);
const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');

/** RSS (bytes) and CPU (user + system, ms) of a process, from /proc (Linux). */
function procStats(pid: number): { rss: number; cpuMs: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) * 1024;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of the line)
  return { rss, cpuMs: (ticks * 1000) / 100 }; // USER_HZ is 100 on Linux
}

// ---------------------------------------------------------------------------------------------- child: subscribers
/** Holds raw stream connections in two groups (direct, relayed); records when each receives a delta. */
async function subscribers(): Promise<void> {
  const times: Record<'direct' | 'relay', number[]> = { direct: [], relay: [] };
  const sockets: WebSocket[] = [];
  let hydrated = 0;
  const open = (url: string, key: string, group: 'direct' | 'relay') =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${key}` }, perMessageDeflate: false });
      ws.once('open', () => {
        ws.on('message', (data: Buffer) => {
          const t = now();
          const head = data.toString('latin1', 0, 24);
          if (head.includes('"delta"')) times[group].push(t);
          else if (head.includes('"hydrate"')) hydrated++;
        });
        ws.send(JSON.stringify({ type: 'hello', sdkId: `sub-${process.pid}-${sockets.length}`, sdkVersion: 'bench' }));
        resolve(ws);
      });
      ws.once('error', reject);
    });
  process.on('message', async (m: { cmd: string; url?: string; key?: string; group?: 'direct' | 'relay'; count?: number }) => {
    if (m.cmd === 'connect') {
      const target = hydrated + m.count!;
      for (let i = 0; i < m.count!; i += 250) {
        sockets.push(...(await Promise.all(Array.from({ length: Math.min(250, m.count! - i) }, () => open(m.url!, m.key!, m.group!)))));
      }
      while (hydrated < target) await sleep(20);
      process.send!({ type: 'connected' });
    } else if (m.cmd === 'count') {
      process.send!({ type: 'count', direct: times.direct.length, relay: times.relay.length });
    } else if (m.cmd === 'collect') {
      process.send!({ type: 'times', direct: times.direct, relay: times.relay });
      times.direct = [];
      times.relay = [];
    } else if (m.cmd === 'exit') {
      for (const ws of sockets) ws.terminate();
      process.exit(0);
    }
  });
  process.send!({ type: 'ready' });
}

// ---------------------------------------------------------------------------------------------- orchestrator
function request(child: ChildProcess, message: object, type: string, timeoutMs = 120_000): Promise<any> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} from child`)), timeoutMs);
    const on = (m: { type: string }) => {
      if (m.type !== type) return;
      clearTimeout(timer);
      child.off('message', on);
      resolve(m);
    };
    child.on('message', on);
    if (Object.keys(message).length) child.send(message);
  });
}

/** Starts a relay process (`server/relay/relay-main.ts`, as `npm run relay` runs it) on `port`; resolves once `/readyz` answers 200. */
async function startRelay(port: number, upstream: string, token: string, cache: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=aviary-source', join(ROOT, 'server/relay/relay-main.ts')], {
    cwd: ROOT,
    env: {
      ...process.env,
      AVIARY_HOST: '127.0.0.1',
      AVIARY_PORT: String(port),
      AVIARY_UPSTREAM: upstream,
      AVIARY_RELAY_TOKEN: token,
      AVIARY_RELAY_CACHE: cache,
      AVIARY_LOG_LEVEL: 'error',
      AVIARY_STREAM_HYDRATION_BURST: '10000000',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`relay exited with ${child.exitCode}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) return child;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('relay did not become ready');
    }
    await sleep(100);
  }
}

async function main(): Promise<void> {
  const rounds = arg('rounds', 5);
  const N = arg('subscribers', 10_000);
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'aviary-relay-bench-'));
  const hardLimit = setTimeout(() => {
    console.error('bench:relay: hard time limit reached, aborting');
    for (const c of children) c.kill('SIGKILL');
    process.exit(1);
  }, 8 * 60_000);
  hardLimit.unref();
  process.on('exit', () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const { loadavg, cpus } = await import('node:os');
  const loadAtStart = loadavg()[0]!;
  const { startServerProcess, freePort, PROCESS_SDK_KEY, PROCESS_ADMIN_TOKEN } = await import('../test/stream/server-process.js');
  const STAGING_KEY = 'process-sdk-key-staging-0123456789abc';
  const server = await startServerProcess(await freePort(), join(dir, 'aviary.db'), {
    AVIARY_LOG_LEVEL: 'warn',
    AVIARY_STREAM_HYDRATION_BURST: '10000000',
    AVIARY_SDK_KEY_STAGING: STAGING_KEY,
  });
  children.push(server.child);
  const admin = (method: string, path: string, body?: unknown) =>
    fetch(server.url + path, {
      method,
      headers: { authorization: `Bearer ${PROCESS_ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    }).then(async (r) => ({ status: r.status, body: (await r.json().catch(() => undefined)) as any }));
  await admin('POST', '/api/v1/flags', { key: 'kill-me', kind: 'boolean' });
  for (const env of ['production', 'staging'])
    await admin('PUT', `/api/v1/flags/kill-me/environments/${env}`, {
      enabled: true,
      offVariant: 'off',
      targets: [],
      rules: [],
      fallthrough: { variant: 'on' },
    });

  // Two relays for staging.
  const relays: { child: ChildProcess; url: string }[] = [];
  for (const name of ['relay-a', 'relay-b']) {
    const created = await admin('POST', '/api/v1/tokens', { kind: 'relay', name, environments: ['staging'] });
    if (created.status !== 201) throw new Error(`relay token: ${created.status} ${JSON.stringify(created.body)}`);
    const port = await freePort();
    const child = await startRelay(port, server.url, created.body.token as string, join(dir, name));
    children.push(child);
    relays.push({ child, url: `http://127.0.0.1:${port}` });
  }

  const subs = [0, 1].map(() =>
    fork(SELF, ['--role', 'subscribers'], {
      execArgv: ['--import', 'tsx', '--conditions=aviary-source', '--max-old-space-size=2048'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  children.push(...subs);
  await Promise.all(subs.map((s) => request(s, {}, 'ready')));
  await sleep(1_000);
  const stream = (url: string) => `${url.replace('http', 'ws')}/sdk/v1/stream`;
  // Direct: N/2 per subscriber process to the server.
  const serverBefore = procStats(server.child.pid!);
  let t0 = performance.now();
  await Promise.all(
    subs.map((s) =>
      request(s, { cmd: 'connect', url: stream(server.url), key: PROCESS_SDK_KEY, group: 'direct', count: N / 2 }, 'connected', 180_000),
    ),
  );
  console.log(`${N} direct subscribers connected in ${fmt((performance.now() - t0) / 1000)} s`);
  await sleep(2_000);
  const serverAfter = procStats(server.child.pid!);
  // Relayed: N/2 per relay (subscriber process i → relay i).
  const relaysBefore = relays.map((r) => procStats(r.child.pid!));
  t0 = performance.now();
  await Promise.all(
    subs.map((s, i) =>
      request(s, { cmd: 'connect', url: stream(relays[i]!.url), key: STAGING_KEY, group: 'relay', count: N / 2 }, 'connected', 180_000),
    ),
  );
  console.log(`${N} relayed subscribers connected in ${fmt((performance.now() - t0) / 1000)} s`);
  await sleep(2_000);
  const relaysAfter = relays.map((r) => procStats(r.child.pid!));
  const serverPerConn = (serverAfter.rss - serverBefore.rss) / N / 1024;
  const relayPerConn = relays.map((_, i) => (relaysAfter[i]!.rss - relaysBefore[i]!.rss) / (N / 2) / 1024);

  const settle = async (group: 'direct' | 'relay') => {
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline) {
      const counts = await Promise.all(subs.map((s) => request(s, { cmd: 'count' }, 'count')));
      if (counts.reduce((n, c) => n + (c[group] as number), 0) >= N) return;
      await sleep(25);
    }
  };
  const collect = async (group: 'direct' | 'relay') => {
    const parts = await Promise.all(subs.map((s) => request(s, { cmd: 'collect' }, 'times')));
    return parts.flatMap((p) => p[group] as number[]);
  };
  const lat: Record<'direct' | 'relay', { p50: number[]; p99: number[] }> = { direct: { p50: [], p99: [] }, relay: { p50: [], p99: [] } };
  let serverCpu = 0;
  let relayCpu = 0;
  let serverCpuRelayed = 0;
  const round = async (group: 'direct' | 'relay', action: string, record: boolean) => {
    const env = group === 'direct' ? 'production' : 'staging';
    const pids = group === 'direct' ? [server.child.pid!] : relays.map((r) => r.child.pid!);
    const cpu0 = pids.map((p) => procStats(p).cpuMs);
    const srv0 = procStats(server.child.pid!).cpuMs;
    const t = now();
    await admin('POST', `/api/v1/flags/kill-me/environments/${env}/${action}`);
    await settle(group);
    const got = (await collect(group)).map((x) => x - t);
    const cpu = pids.reduce((n, p, i) => n + procStats(p).cpuMs - cpu0[i]!, 0);
    if (!record) return;
    if (got.length < N) console.log(`${group} round: ${got.length}/${N} delivered`);
    lat[group].p50.push(median(got));
    lat[group].p99.push(quantile(got, 0.99));
    if (group === 'direct') serverCpu += cpu;
    else {
      relayCpu += cpu;
      serverCpuRelayed += procStats(server.child.pid!).cpuMs - srv0;
    }
  };
  // Warm-up rounds (JIT), then interleaved recorded rounds.
  for (let r = 0; r < 4; r++) {
    await round('direct', r % 2 === 0 ? 'kill' : 'revive', false);
    await round('relay', r % 2 === 0 ? 'kill' : 'revive', false);
    await sleep(200);
  }
  for (let r = 0; r < rounds * 2; r++) {
    const action = r % 2 === 0 ? 'kill' : 'revive';
    // Alternate which group goes first, so neither always follows the other's round.
    const order: Array<'direct' | 'relay'> = r % 4 < 2 ? ['direct', 'relay'] : ['relay', 'direct'];
    for (const g of order) {
      await round(g, action, true);
      await sleep(300);
    }
  }
  const changes = rounds * 2;
  const d99 = median(lat.direct.p99);
  const r99 = median(lat.relay.p99);
  const results: Array<[string, string]> = [
    [`kill → ${N} subscribers on one server`, `p50 ${fmt(median(lat.direct.p50))} ms, p99 ${fmt(d99)} ms`],
    [`kill → ${N} subscribers behind 2 relays`, `p50 ${fmt(median(lat.relay.p50))} ms, p99 ${fmt(r99)} ms (${fmt(r99 / d99, 2)}× one server)`],
    [
      'memory per SDK connection (RSS)',
      `server ${fmt(serverPerConn, 2)} KiB; relays ${relayPerConn.map((x) => fmt(x, 2)).join(' and ')} KiB (${fmt(median(relayPerConn) / serverPerConn, 2)}× server)`,
    ],
    [
      'CPU per change per 1,000 connections',
      `server ${fmt(serverCpu / changes / (N / 1000), 2)} ms; relays ${fmt(relayCpu / changes / (N / 1000), 2)} ms (+ server ${fmt(serverCpuRelayed / changes, 2)} ms per relayed change for its 2 relay streams)`,
    ],
  ];
  console.log(`direct p99 per round: ${lat.direct.p99.map((x) => fmt(x)).join(' ')} ms; relayed: ${lat.relay.p99.map((x) => fmt(x)).join(' ')} ms`);
  for (const s of subs) s.send({ cmd: 'exit' });
  for (const r of relays) r.child.kill('SIGTERM');
  await sleep(500);
  await server.stop();
  console.log(
    `\nmachine: ${cpus().length} cores, 1-minute load average ${fmt(loadAtStart, 1)} at start, ${fmt(loadavg()[0]!, 1)} at end (latencies scale with it)`,
  );
  console.log(`rounds: ${changes} changes per group, interleaved, medians of rounds\n\n| measurement | result |\n|---|---|`);
  for (const [m, r] of results) console.log(`| ${m} | ${r} |`);
  clearTimeout(hardLimit);
  process.exit(0);
}

const role = process.argv.indexOf('--role') >= 0 ? process.argv[process.argv.indexOf('--role') + 1] : 'main';
if (role === 'subscribers') await subscribers();
else await main();
