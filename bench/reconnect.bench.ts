/**
 * `npm run bench:reconnect`: a server dies under 1,000 connected SDKs; how long until every SDK serves current flags
 * again, and how the reconnects spread out.
 *
 * Each round: a fresh database and server process (as `npm start` runs it, default configuration: the hydration
 * limits are the defaults, nothing raised), 1,000 SDK clients with default options in two child processes (one per
 * core), one flag. Then, by mode:
 *  - `failover`: the SDKs reach the server through a TCP proxy standing in for a load balancer, and a second server
 *    on a copy of the database (same data, same versions) stands in for another replica of a shared database. The
 *    first server is SIGKILLed and the proxy sends new connections to the second at once.
 *  - `kill`: SIGKILL, then the server is restarted on the same port and database.
 *  - `term`: SIGTERM (the server says goodbye to every stream with its reconnect window), then restarted.
 * As soon as a server is there again (the standby at once, a restarted one when it answers `/healthz`) a flag is
 * changed through it. Measured per round:
 *  - time-to-current: from the flag change (the API call's start) until each SDK serves the new value;
 *  - reconnects: when each SDK was current again after its stream dropped (its `ready` event), from the moment a
 *    server was there again: p10–p90 spread, the busiest 100 ms (how many SDKs arrived in it), the last one;
 *  - connection attempts per SDK over the round (refused ones included).
 * A `kill` round costs a snapshot per SDK: the boot after an unclean stop moves every version forward, so every SDK
 * hydrates (docs/operations.md), all 1,000 from one address with one key, against the default snapshot limit.
 * Printed per round and as medians over the rounds. Times across processes use `performance.timeOrigin +
 * performance.now()` (one machine, one clock). Every phase is bounded; a hard limit kills everything.
 * Options: --sdks 1000 --rounds 3 (per mode) --modes failover,kill,term
 */
import { fork, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const median = (v: number[]) => quantile(v, 0.5);
const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');

/** The most values within any `width` ms. */
function busiest(values: number[], width: number): number {
  const s = [...values].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < s.length; i++) {
    while (s[i]! - s[j]! > width) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

/** What one SDK went through in a round (epoch ms; 0 = did not happen). */
interface Record {
  lost: number;
  back: number;
  current: number;
  attempts: number;
}

// ---------------------------------------------------------------------------------------------- child: SDK clients
/** N real SDK clients with default options; records when each lost its stream, got it back and served the new value. */
async function sdkClients(): Promise<void> {
  const [baseUrl = '', sdkKey = '', countText = '0'] = process.argv.slice(4);
  const { createClient } = await import('@aviary/sdk');
  const clients = Array.from({ length: Number(countText) }, () => createClient({ baseUrl, sdkKey, flushIntervalMs: 0 }));
  await Promise.all(clients.map((c) => c.ready(60_000)));
  let expected: boolean | undefined;
  let records: Record[] = [];
  const arm = (want: boolean) => {
    expected = want;
    records = clients.map((c) => ({ lost: 0, back: 0, current: 0, attempts: -(c.status().stream?.connects ?? 0) }));
  };
  clients.forEach((c, i) => {
    const check = () => {
      const r = records[i];
      if (r && !r.current && expected !== undefined && c.variation('f', { key: 'u' }, !expected) === expected) r.current = now();
    };
    c.on('stale', () => {
      const r = records[i];
      if (r && !r.lost) r.lost = now();
    });
    c.on('ready', () => {
      const r = records[i];
      if (r?.lost && !r.back) r.back = now();
      check();
    });
    c.on('change', check);
  });
  process.send!({ type: 'ready' });
  process.on('message', async (m: { cmd: string; expect?: boolean }) => {
    if (m.cmd === 'arm') {
      arm(m.expect!);
      process.send!({ type: 'armed' });
    } else if (m.cmd === 'count') {
      process.send!({ type: 'count', current: records.filter((r) => r.current).length });
    } else if (m.cmd === 'collect') {
      for (const [i, c] of clients.entries()) records[i]!.attempts += c.status().stream?.connects ?? 0;
      process.send!({ type: 'records', records });
    } else if (m.cmd === 'exit') {
      await Promise.all(clients.map((c) => c.close()));
      process.exit(0);
    }
  });
}

// ---------------------------------------------------------------------------------------------- orchestrator
function request(child: ChildProcess, message: object, type: string, timeoutMs = 60_000): Promise<any> {
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

interface RoundResult {
  mode: string;
  downMs: number;
  toCurrent: number[];
  arrivals: number[];
  attempts: number;
  missing: number;
}

/**
 * A TCP proxy standing in for a load balancer: every new connection goes to `target`; when an upstream goes away, so
 * does the client's connection through it (as a load balancer's would).
 */
async function tcpProxy(target: number): Promise<{ port: number; retarget(port: number): void; close(): void }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    retarget: (port: number) => void (target = port),
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

async function main(): Promise<void> {
  const SDKS = Number(arg('sdks', '1000'));
  const ROUNDS = Number(arg('rounds', '3'));
  const modes = arg('modes', 'failover,kill,term').split(',');
  const { startServerProcess, freePort, PROCESS_SDK_KEY, PROCESS_ADMIN_TOKEN } = await import('../test/stream/server-process.js');
  type ServerProcess = Awaited<ReturnType<typeof startServerProcess>>;
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'aviary-reconnect-bench-'));
  const hardLimit = setTimeout(
    () => {
      console.error('bench:reconnect: hard time limit reached, aborting');
      for (const c of children) c.kill('SIGKILL');
      process.exit(1);
    },
    (60 + 45 * ROUNDS * modes.length) * 1000,
  );
  hardLimit.unref();
  process.on('exit', () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  console.log(
    `bench:reconnect: ${SDKS} SDKs, ${ROUNDS} rounds of ${modes.join(', ')}; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  const env = { AVIARY_LOG_LEVEL: 'warn' };
  const start = async (port: number, dbPath: string) => {
    const s = await startServerProcess(port, dbPath, env);
    children.push(s.child);
    return s;
  };
  const admin = (server: ServerProcess, method: string, path: string, body?: unknown) =>
    fetch(server.url + path, {
      method,
      headers: { authorization: `Bearer ${PROCESS_ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    }).then((res) => {
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status}`);
    });
  const state = (enabled: boolean) => ({ enabled, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } });

  const results: RoundResult[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of modes) {
      const port = await freePort();
      const dbPath = join(dir, `round-${r}-${mode}.db`);
      let server = await start(port, dbPath);
      await admin(server, 'POST', '/api/v1/flags', { key: 'f', kind: 'boolean' });
      await admin(server, 'PUT', '/api/v1/flags/f/environments/production', state(true));
      // failover: a second server on a copy of the database (stopped cleanly first, so it is the same data at the same
      // versions) stands in for another replica of one shared database; the SDKs reach the first one through the proxy.
      let standby: ServerProcess | undefined;
      let proxy: Awaited<ReturnType<typeof tcpProxy>> | undefined;
      if (mode === 'failover') {
        await server.stop();
        copyFileSync(dbPath, `${dbPath}.standby`);
        server = await start(port, dbPath);
        standby = await start(await freePort(), `${dbPath}.standby`);
        proxy = await tcpProxy(port);
      }
      const sdkUrl = proxy ? `http://127.0.0.1:${proxy.port}` : server.url;

      const workers = [0, 1].map((i) =>
        fork(SELF, ['--role', 'sdk-clients', sdkUrl, PROCESS_SDK_KEY, String(Math.floor(SDKS / 2) + (i === 0 ? SDKS % 2 : 0))], {
          execArgv: ['--import', 'tsx', '--conditions=aviary-source'],
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        }),
      );
      children.push(...workers);
      await Promise.all(workers.map((w) => request(w, {}, 'ready', 120_000)));
      await sleep(1_000);
      await Promise.all(workers.map((w) => request(w, { cmd: 'arm', expect: false }, 'armed')));

      const tDown = now();
      if (mode === 'term') await server.stop();
      else await server.crash();
      const stopMs = now() - tDown;
      const exitCode = server.child.exitCode;
      if (standby) {
        // The load balancer sends new connections to the replica still up (at once: a health check would add its interval).
        proxy!.retarget(Number(new URL(standby.url).port));
        server = standby;
      } else server = await start(port, dbPath);
      const tUp = now();
      const tChange = now();
      await admin(server, 'PUT', '/api/v1/flags/f/environments/production', state(false));
      const deadline = now() + 30_000;
      for (;;) {
        const counts = await Promise.all(workers.map((w) => request(w, { cmd: 'count' }, 'count')));
        if (counts.reduce((n, c) => n + (c.current as number), 0) >= SDKS || now() > deadline) break;
        await sleep(100);
      }
      const records = (await Promise.all(workers.map((w) => request(w, { cmd: 'collect' }, 'records')))).flatMap((m) => m.records as Record[]);
      for (const w of workers) w.send({ cmd: 'exit' });
      const current = records.filter((x) => x.current);
      const result: RoundResult = {
        mode,
        downMs: tUp - tDown,
        toCurrent: current.map((x) => x.current - tChange),
        arrivals: records.filter((x) => x.back).map((x) => x.back - tUp),
        attempts: records.reduce((n, x) => n + x.attempts, 0) / records.length,
        missing: SDKS - current.length,
      };
      results.push(result);
      const a = result.arrivals;
      console.log(
        `round ${r + 1} ${mode.padEnd(8)}: server down ${fmt(result.downMs)} ms (stopped in ${fmt(stopMs)} ms, exit ${exitCode}); ` +
          `time-to-current p50 ${fmt(median(result.toCurrent))} ms, p99 ${fmt(quantile(result.toCurrent, 0.99))} ms, max ${fmt(Math.max(...result.toCurrent))} ms` +
          (result.missing ? ` (${result.missing} SDKs not current after 30 s)` : '') +
          `; reconnects after the server was back: p10 ${fmt(quantile(a, 0.1))} ms, p50 ${fmt(median(a))} ms, p90 ${fmt(quantile(a, 0.9))} ms, ` +
          `last ${fmt(Math.max(...a))} ms, busiest 100 ms ${busiest(a, 100)} SDKs; ${fmt(result.attempts, 2)} connection attempts per SDK`,
      );
      await sleep(300);
      proxy?.close();
      await server.stop();
    }
  }

  const names: { [mode: string]: string } = {
    failover: 'SIGKILL, another replica up',
    kill: 'SIGKILL + restart',
    term: 'SIGTERM (goodbye) + restart',
  };
  console.log(
    `\nmedians over ${ROUNDS} rounds per mode (${SDKS} SDKs; load average now ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}):`,
  );
  for (const mode of modes) {
    const rs = results.filter((x) => x.mode === mode);
    const m = (f: (x: RoundResult) => number) => fmt(median(rs.map(f)));
    console.log(
      `  ${names[mode] ?? mode}: server down ${m((x) => x.downMs)} ms; ` +
        `time-to-current p50 ${m((x) => median(x.toCurrent))} ms, p99 ${m((x) => quantile(x.toCurrent, 0.99))} ms, max ${m((x) => Math.max(...x.toCurrent))} ms; ` +
        `reconnect spread p10–p90 ${m((x) => quantile(x.arrivals, 0.9) - quantile(x.arrivals, 0.1))} ms, ` +
        `busiest 100 ms ${m((x) => busiest(x.arrivals, 100))} SDKs, last ${m((x) => Math.max(...x.arrivals))} ms after the server was back; ` +
        `${fmt(median(rs.map((x) => x.attempts)), 2)} attempts per SDK; not current ${m((x) => x.missing)}`,
    );
  }
  clearTimeout(hardLimit);
  process.exit(0);
}

const role = process.argv.indexOf('--role') >= 0 ? process.argv[process.argv.indexOf('--role') + 1] : 'main';
if (role === 'sdk-clients') await sdkClients();
else await main();
