/**
 * `npm run bench:replicas`: Aviary as replicas on one PostgreSQL (issue 12, CONTRACT §9).
 *
 * Two replicas A (127.0.0.2) and B (127.0.0.3) run as `npm start` does, in their own processes, on one embedded
 * PostgreSQL (test/setup/postgres-server.ts; data directory in RAM when /dev/shm exists, fsync on). Real SDK clients
 * run in two child processes (one per core), a metrics load generator in a third. Phases (`--only` picks some):
 *
 *  - ack:      write acknowledgement of kill/revive (sequential, alternately through A and B, no SDKs connected), idle
 *              and while a load generator sends `--flush-rate` metric reports per second (default 833, i.e. 50,000 a
 *              minute: 3 rows each, from 200 sdkIds with increasing seq) spread over A and B. Rounds interleaved.
 *  - kill:     kill through A → 1,000 SDKs split 500 on A and 500 on B, interleaved with a single-node baseline: the
 *              same two processes' other 1,000 SDKs on a SQLite server (`--baseline replica`: all on replica A, in
 *              the staging environment, killed through A).
 *  - cpu:      1,000 SDKs on B, changes (kill/revive with a receipt, `?waitMs=`) written through A at a fixed pace:
 *              CPU (user+sys from /proc/<pid>/stat) of B and of A per change, minus their idle CPU over the same
 *              wall time; for comparison the same with 1,000 SDKs on the SQLite server, changes written there (idle
 *              and change windows interleaved).
 *  - failover: 1,000 SDKs behind a round-robin TCP proxy (test/helpers/tcp-proxy.ts) in front of A and B; SIGKILL A,
 *              at once a kill through B; per SDK that was on A (it saw its stream drop), the time from the SIGKILL
 *              until it serves the new value. A is restarted between rounds; the SDKs reconnect fresh each round.
 *
 * Times across processes use `performance.timeOrigin + performance.now()` (one machine, one clock). Every phase has
 * its own time limit and the run a hard one (--limit-s 300). Options: --rounds 5 --ack-writes 200 --flush-rate 833
 * --changes 100 --change-interval-ms 50 --failover-rounds 3 --clients 1000 --baseline sqlite|replica --wait-ms 2000
 * (the receipt asked for in kill and cpu; 0: none) --only ack,kill,cpu,failover (e.g. `npm run bench:replicas --
 * --only failover` to rerun one phase).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
function argText(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}
function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const median = (v: number[]) => quantile(v, 0.5);
const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
const round = (n: number, d = 1) => (Number.isFinite(n) ? Number(n.toFixed(d)) : null);

/** One HTTP call on a keep-alive agent (less client overhead than fetch on the measuring path). */
function call(
  agent: Agent,
  base: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; body: any; ms: number }> {
  const url = new URL(path, base);
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method,
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const ms = performance.now() - t0;
          const text = Buffer.concat(chunks).toString();
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = text;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, ms });
        });
      },
    );
    req.on('error', () => resolve({ status: 0, body: undefined, ms: performance.now() - t0 }));
    req.end(payload);
  });
}

// ---------------------------------------------------------------------------------------------- child: SDK clients
/**
 * Groups of real SDK clients. Per group it records when each client serves a new value of `kill-me` (on `change`
 * and `ready` events) and when its stream dropped (`stale`), since the last `arm`.
 */
async function sdkWorker(): Promise<void> {
  const { createClient } = await import('@aviary/sdk');
  type Client = ReturnType<typeof createClient>;
  interface Group {
    clients: Client[];
    last: boolean[];
    times: number[];
    staleAt: number[];
    flipAt: number[];
    /** Stream connection attempts of each client at the last `arm`. */
    connectsAtArm: number[];
    /** SDK `error` events since the last `arm`, by message (numbers masked). */
    errors: Record<string, number>;
  }
  const groups = new Map<string, Group>();
  const reply = (id: number, data: object = {}) => process.send!({ id, ...data });
  process.on('message', async (m: { id: number; cmd: string; group: string; url: string; key: string; count: number }) => {
    const g = groups.get(m.group);
    if (m.cmd === 'connect') {
      const group: Group = { clients: [], last: [], times: [], staleAt: [], flipAt: [], connectsAtArm: [], errors: {} };
      groups.set(m.group, group);
      for (let i = 0; i < m.count; i++) {
        const c = createClient({ baseUrl: m.url, sdkKey: m.key, flushIntervalMs: 0 });
        group.clients.push(c);
        group.last.push(false);
        group.staleAt.push(NaN);
        group.flipAt.push(NaN);
        const check = () => {
          const v = c.variation('kill-me', { key: 'u' }, false);
          if (v === group.last[i]) return;
          const t = now();
          group.last[i] = v;
          group.times.push(t);
          if (Number.isNaN(group.flipAt[i]!)) group.flipAt[i] = t;
        };
        c.on('change', check);
        c.on('ready', check);
        c.on('error', (err) => {
          const key = err.message.replace(/\d+/g, 'N');
          group.errors[key] = (group.errors[key] ?? 0) + 1;
        });
        c.on('stale', () => {
          if (Number.isNaN(group.staleAt[i]!)) group.staleAt[i] = now();
        });
      }
      const results = await Promise.allSettled(group.clients.map((c) => c.ready(60_000)));
      reply(m.id, { ready: results.filter((r) => r.status === 'fulfilled').length });
    } else if (m.cmd === 'arm' && g) {
      g.times = [];
      g.staleAt.fill(NaN);
      g.flipAt.fill(NaN);
      g.errors = {};
      g.connectsAtArm = g.clients.map((c) => c.status().stream?.connects ?? 0);
      reply(m.id);
    } else if (m.cmd === 'count' && g) {
      let staleFlipped = 0;
      let stale = 0;
      for (let i = 0; i < g.clients.length; i++) {
        if (Number.isNaN(g.staleAt[i]!)) continue;
        stale++;
        if (!Number.isNaN(g.flipAt[i]!)) staleFlipped++;
      }
      reply(m.id, { times: g.times.length, stale, staleFlipped });
    } else if (m.cmd === 'collect' && g) {
      const attempts = g.clients.map((c, i) => (c.status().stream?.connects ?? 0) - (g.connectsAtArm[i] ?? 0));
      reply(m.id, { times: g.times, staleAt: g.staleAt, flipAt: g.flipAt, attempts, errors: g.errors });
      g.times = [];
    } else if (m.cmd === 'close') {
      if (g) {
        groups.delete(m.group);
        await Promise.all(g.clients.map((c) => c.close()));
      }
      reply(m.id);
    } else if (m.cmd === 'exit') {
      await Promise.all([...groups.values()].flatMap((x) => x.clients.map((c) => c.close())));
      process.exit(0);
    } else reply(m.id, { error: `unknown command ${m.cmd} or group ${m.group}` });
  });
  process.send!({ id: 0 });
}

// ---------------------------------------------------------------------------------------------- child: metrics load
/**
 * Sends `POST /sdk/v1/metrics` at a fixed rate between `start` and `stop`, round-robin over the replicas: small
 * reports (3 rows) from 200 sdkIds, each with its own increasing seq. Open loop (paced by the clock), at most 256 in
 * flight; answers what it sent, what was accepted, and how far it fell behind the pace.
 */
async function metricsLoader(): Promise<void> {
  const [urlsText = '', sdkKey = '', rateText = '833', idsText = '200'] = process.argv.slice(4);
  const urls = urlsText.split(',').map((u) => new URL(u));
  const agents = urls.map(() => new Agent({ keepAlive: true, maxSockets: 128 }));
  const rate = Number(rateText);
  const ids = Number(idsText);
  const seqs = new Array<number>(ids).fill(0);
  const prefix = `load-${process.pid}`;
  const flags = [
    ['m-0', 'on'],
    ['m-1', 'off'],
    ['m-2', 'on'],
  ] as const;
  let running = false;
  let stats = { sent: 0, ok: 0, statuses: {} as Record<string, number>, lat: [] as number[], startedAt: 0, behind: 0 };
  let inflight = 0;
  const report = (n: number) => {
    const id = n % ids;
    const seq = ++seqs[id]!;
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    return JSON.stringify({
      sdkId: `${prefix}-${id}`,
      seq,
      sdk: { name: 'bench', version: '0' },
      stats: flags.map(([flag, variant], j) => ({
        flag,
        variant,
        minute,
        evaluations: 20 + ((seq + j) % 7),
        reasons: { FALLTHROUGH: 20 + ((seq + j) % 7) },
        outcomes: 2,
        errors: seq % 13 === 0 ? 1 : 0,
        latency: { '120': 1, '124': 1 },
      })),
    });
  };
  const send = (n: number) => {
    const i = n % urls.length;
    const u = urls[i]!;
    const body = report(n);
    const t0 = performance.now();
    inflight++;
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        path: '/sdk/v1/metrics',
        method: 'POST',
        agent: agents[i],
        headers: { authorization: `Bearer ${sdkKey}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          inflight--;
          const s = String(res.statusCode);
          stats.statuses[s] = (stats.statuses[s] ?? 0) + 1;
          if (res.statusCode === 200) stats.ok++;
          stats.lat.push(performance.now() - t0);
        });
      },
    );
    req.on('error', () => {
      inflight--;
      stats.statuses['0'] = (stats.statuses['0'] ?? 0) + 1;
    });
    req.end(body);
  };
  let total = 0;
  const pump = () => {
    if (!running) return;
    const due = Math.floor(((performance.now() - stats.startedAt) / 1000) * rate);
    while (stats.sent < due && inflight < 256) {
      send(total++);
      stats.sent++;
    }
    stats.behind = Math.max(stats.behind, due - stats.sent);
    setTimeout(pump, 2);
  };
  process.on('message', async (m: { id: number; cmd: string }) => {
    if (m.cmd === 'start') {
      stats = { sent: 0, ok: 0, statuses: {}, lat: [], startedAt: performance.now(), behind: 0 };
      running = true;
      pump();
      process.send!({ id: m.id });
    } else if (m.cmd === 'stop') {
      running = false;
      const elapsedMs = performance.now() - stats.startedAt;
      const deadline = performance.now() + 10_000;
      while (inflight > 0 && performance.now() < deadline) await sleep(10);
      process.send!({
        id: m.id,
        sent: stats.sent,
        ok: stats.ok,
        statuses: stats.statuses,
        elapsedMs,
        behind: stats.behind,
        p50: median(stats.lat),
        p99: quantile(stats.lat, 0.99),
      });
    } else if (m.cmd === 'exit') process.exit(0);
  });
  process.send!({ id: 0 });
}

// ---------------------------------------------------------------------------------------------- orchestrator
let nextId = 1;
/** Sends a command to a child and resolves with its answer (matched by id). */
function ask(child: ChildProcess, message: object, timeoutMs = 60_000): Promise<any> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', on);
      reject(new Error(`no answer from child ${child.pid} to ${JSON.stringify(message)}`));
    }, timeoutMs);
    const on = (m: { id: number; error?: string }) => {
      if (m.id !== id) return;
      clearTimeout(timer);
      child.off('message', on);
      if (m.error) reject(new Error(m.error));
      else resolve(m);
    };
    child.on('message', on);
    child.send({ id, ...message });
  });
}

/** Forks this file in a role and waits for its hello. */
async function forkRole(role: string, args: string[] = []): Promise<ChildProcess> {
  const child = fork(SELF, ['--role', role, ...args], {
    execArgv: ['--import', 'tsx', '--conditions=aviary-source'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  // A send to a child that is gone (aborted run) fails the command that waits for its answer, not the process.
  child.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} did not start`)), 30_000);
    child.once('message', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)));
  });
  return child;
}

const CLK_TCK = 100;
/** CPU time (user + system) of a process so far, in ms, from /proc/<pid>/stat. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command: state is field 3, utime 14, stime 15 (1-based over the whole line).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** /proc/<pid>/stat fields after the command (index 0 is field 3, the state). */
function statFields(pid: number | string): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/**
 * CPU time (ms) of a PostgreSQL server so far: the postmaster, its exited children (cutime, cstime) and its live
 * children (backends, WAL writer, checkpointer...). /proc/<pid>/stat is readable whoever runs them.
 */
function pgCpuMs(postmaster: number): number {
  const pm = statFields(postmaster);
  if (!pm) return NaN;
  let ticks = Number(pm[11]) + Number(pm[12]) + Number(pm[13]) + Number(pm[14]);
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const f = statFields(d);
    if (f && Number(f[1]) === postmaster) ticks += Number(f[11]) + Number(f[12]);
  }
  return (ticks * 1000) / CLK_TCK;
}

class PhaseTimeout extends Error {}
function within<T>(name: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PhaseTimeout(`phase ${name} took longer than ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function main(): Promise<void> {
  const rounds = arg('rounds', 5);
  const CLIENTS = arg('clients', 1000);
  const half = CLIENTS / 2;
  const ACK_WRITES = arg('ack-writes', 200);
  const FLUSH_RATE = arg('flush-rate', 833);
  const CHANGES = arg('changes', 100);
  const CHANGE_INTERVAL = arg('change-interval-ms', 50);
  const FAILOVER_ROUNDS = arg('failover-rounds', 3);
  // Kill and cpu phases ask for a receipt (as an on-call engineer would); --wait-ms 0 writes without one.
  const WAIT_MS = arg('wait-ms', 2000);
  const waitQuery = WAIT_MS > 0 ? `?waitMs=${WAIT_MS}` : '';
  const baseline = argText('baseline', 'sqlite');
  const phases = new Set(argText('only', 'ack,kill,cpu,failover').split(','));
  const startedAt = performance.now();

  const children: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'aviary-replicas-bench-'));
  let disposePg: (() => Promise<void>) | null = null;
  const cleanup = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  const hardLimit = setTimeout(() => {
    console.error('bench:replicas: hard time limit reached, aborting');
    cleanup();
    void (disposePg?.() ?? Promise.resolve()).finally(() => process.exit(1));
  }, arg('limit-s', 300) * 1000);
  hardLimit.unref();

  const results: Array<[string, string, string]> = [];
  const json: Record<string, unknown> = { bench: 'replicas', clients: CLIENTS };
  const loadAtStart = loadavg()[0]!;
  const { startEmbeddedPostgres, withAdmin } = await import('../test/setup/postgres-server.js');
  const { startServerProcess, freePort, PROCESS_SDK_KEY, PROCESS_ADMIN_TOKEN } = await import('../test/stream/server-process.js');
  const { startTcpProxy } = await import('../test/helpers/tcp-proxy.js');
  const STAGING_KEY = 'process-sdk-key-staging-0123456789ab';

  // ---- PostgreSQL, replicas A and B, a SQLite server S
  const t0 = performance.now();
  const pg = await startEmbeddedPostgres({ fsync: true });
  disposePg = () => pg.dispose();
  const db = await pg.createDatabase();
  const replicaEnv = (host: string) => ({
    AVIARY_HOST: host,
    AVIARY_DATABASE_URL: db.url,
    AVIARY_SDK_KEY_STAGING: STAGING_KEY,
    // Thousands of SDKs from one address with one key: past the per-(key, address) snapshot limit.
    AVIARY_STREAM_HYDRATION_BURST: '10000000',
  });
  const [aPort, bPort, sPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const startA = () => startServerProcess(aPort, '', replicaEnv('127.0.0.2'));
  const [A0, B, S] = await Promise.all([
    startA(),
    startServerProcess(bPort, '', replicaEnv('127.0.0.3')),
    startServerProcess(sPort, join(dir, 'aviary.db'), { AVIARY_STREAM_HYDRATION_BURST: '10000000' }),
  ]);
  let A = A0;
  children.push(A.child, B.child, S.child);
  console.log(`PostgreSQL and three servers up in ${fmt((performance.now() - t0) / 1000)} s (A ${A.url}, B ${B.url}, SQLite ${S.url})`);

  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const admin = (base: string, method: string, path: string, body?: unknown) => call(agent, base, method, path, PROCESS_ADMIN_TOKEN, body);
  const expectOk = async (p: Promise<{ status: number; body: any }>, what: string) => {
    const r = await p;
    if (r.status >= 300) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
    return r;
  };
  const onState = { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } };
  for (const key of ['kill-me', 'ack-probe', 'm-0', 'm-1', 'm-2']) {
    await expectOk(admin(A.url, 'POST', '/api/v1/flags', { key, kind: 'boolean' }), `create ${key}`);
    await expectOk(admin(A.url, 'PUT', `/api/v1/flags/${key}/environments/production`, onState), `state ${key}`);
  }
  await expectOk(admin(A.url, 'PUT', '/api/v1/flags/kill-me/environments/staging', onState), 'state kill-me staging');
  await expectOk(admin(S.url, 'POST', '/api/v1/flags', { key: 'kill-me', kind: 'boolean' }), 'create kill-me on S');
  await expectOk(admin(S.url, 'PUT', '/api/v1/flags/kill-me/environments/production', onState), 'state kill-me on S');

  const workers = await Promise.all([forkRole('sdk-worker'), forkRole('sdk-worker')]);
  children.push(...workers);
  const both = (message: object, timeoutMs?: number) => Promise.all(workers.map((w) => ask(w, message, timeoutMs)));
  const connect = async (group: string, targets: Array<{ url: string; key: string }>) => {
    const t = performance.now();
    const got = await Promise.all(
      workers.map((w, i) => ask(w, { cmd: 'connect', group, url: targets[i]!.url, key: targets[i]!.key, count: half }, 90_000)),
    );
    const ready = got.reduce((n, g) => n + (g.ready as number), 0);
    console.log(`${group}: ${ready}/${CLIENTS} SDKs ready in ${fmt((performance.now() - t) / 1000)} s`);
    if (ready < CLIENTS) throw new Error(`${group}: only ${ready}/${CLIENTS} SDKs became ready`);
  };
  const counts = async (group: string) => {
    const c = await both({ cmd: 'count', group });
    return {
      times: c.reduce((n, x) => n + x.times, 0),
      stale: c.reduce((n, x) => n + x.stale, 0),
      staleFlipped: c.reduce((n, x) => n + x.staleFlipped, 0),
    };
  };
  const waitFor = async (check: () => Promise<boolean>, timeoutMs: number) => {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (await check()) return true;
      await sleep(20);
    }
    return false;
  };

  const run = async (name: string, budgetMs: number, fn: () => Promise<void>) => {
    if (!phases.has(name)) return;
    const t = performance.now();
    console.log(`\n== ${name}`);
    await within(name, budgetMs, fn());
    console.log(`== ${name}: ${fmt((performance.now() - t) / 1000)} s`);
  };

  try {
    // ---- write acknowledgement on PostgreSQL, idle and under metrics flushes
    await run('ack', 75_000, async () => {
      const loader = await forkRole('metrics-loader', [`${A.url},${B.url}`, PROCESS_SDK_KEY, String(FLUSH_RATE), '200']);
      children.push(loader);
      let k = 0;
      const writes = async (n: number) => {
        const lat: number[] = [];
        for (let i = 0; i < n; i++, k++) {
          const base = (k >> 1) % 2 === 0 ? A.url : B.url;
          const r = await admin(base, 'POST', `/api/v1/flags/ack-probe/environments/production/${k % 2 === 0 ? 'kill' : 'revive'}`);
          if (r.status !== 200) throw new Error(`ack write answered ${r.status} ${JSON.stringify(r.body)}`);
          lat.push(r.ms);
        }
        return lat;
      };
      // Warm-up, unrecorded: writes alone, then the metrics path under load (JIT in servers and loader).
      await writes(40);
      await ask(loader, { cmd: 'start' });
      await sleep(1500);
      await writes(20);
      await ask(loader, { cmd: 'stop' }, 20_000);
      const idleP50: number[] = [];
      const idleP99: number[] = [];
      const loadP50: number[] = [];
      const loadP99: number[] = [];
      const rates: number[] = [];
      const loads: Array<Record<string, unknown>> = [];
      const ackRounds = Math.max(2, Math.ceil(rounds / 2) + 1);
      for (let r = 0; r < ackRounds; r++) {
        const idle = await writes(ACK_WRITES);
        idleP50.push(median(idle));
        idleP99.push(quantile(idle, 0.99));
        await ask(loader, { cmd: 'start' });
        await sleep(1000);
        const loaded = await writes(ACK_WRITES);
        const st = await ask(loader, { cmd: 'stop' }, 20_000);
        loadP50.push(median(loaded));
        loadP99.push(quantile(loaded, 0.99));
        rates.push((st.ok / st.elapsedMs) * 1000);
        loads.push(st);
        console.log(
          `round ${r}: idle p50 ${fmt(median(idle))} p99 ${fmt(quantile(idle, 0.99))} ms; under load p50 ${fmt(median(loaded))} p99 ${fmt(quantile(loaded, 0.99))} ms; ` +
            `flushes ${st.ok}/${st.sent} ok in ${fmt(st.elapsedMs / 1000)} s = ${fmt((st.ok / st.elapsedMs) * 1000, 0)}/s (statuses ${JSON.stringify(st.statuses)}, ` +
            `metrics p50 ${fmt(st.p50)} p99 ${fmt(st.p99)} ms, max behind pace ${st.behind})`,
        );
        await sleep(300);
      }
      loader.send({ id: -1, cmd: 'exit' });
      results.push([
        'write ack on PostgreSQL (kill/revive, sequential), idle',
        `p50 ${fmt(median(idleP50))} ms, p99 ${fmt(median(idleP99))} ms (medians of ${idleP99.length} rounds × ${ACK_WRITES})`,
        'p99 ≤ 20 ms',
      ]);
      results.push([
        `write ack under metric flushes (target ${FLUSH_RATE}/s over A and B)`,
        `p50 ${fmt(median(loadP50))} ms, p99 ${fmt(median(loadP99))} ms; flushes accepted ${fmt(median(rates), 0)}/s (${fmt(median(rates) * 60, 0)}/min)`,
        'p99 ≤ 20 ms at 833/s',
      ]);
      json.ack = {
        idle: { p50: round(median(idleP50)), p99: round(median(idleP99)), p99s: idleP99.map((x) => round(x)) },
        loaded: { p50: round(median(loadP50)), p99: round(median(loadP99)), p99s: loadP99.map((x) => round(x)) },
        flushTarget: FLUSH_RATE,
        flushesPerSecond: round(median(rates), 0),
        statuses: loads.map((l) => l.statuses),
      };
    });

    // ---- kill through A → 1,000 SDKs split over A and B, interleaved with a single-node baseline
    await run('kill', 100_000, async () => {
      await connect('split', [
        { url: A.url, key: PROCESS_SDK_KEY },
        { url: B.url, key: PROCESS_SDK_KEY },
      ]);
      const base =
        baseline === 'replica'
          ? { url: A.url, key: STAGING_KEY, env: 'staging', label: 'all on replica A (PostgreSQL)' }
          : { url: S.url, key: PROCESS_SDK_KEY, env: 'production', label: 'all on one SQLite server' };
      await connect('base', [base, base]);
      const configs = [
        { name: 'split', url: A.url, env: 'production' },
        { name: 'base', url: base.url, env: base.env },
      ];
      const stats = new Map(
        configs.map((c) => [
          c.name,
          {
            p50: [] as number[],
            p99: [] as number[],
            max: [] as number[],
            api: [] as number[],
            receipts: [] as string[],
            p99First: [] as number[],
            p99Second: [] as number[],
          },
        ]),
      );
      const once = async (c: (typeof configs)[number], action: string, record: boolean) => {
        await both({ cmd: 'arm', group: c.name });
        const t = now();
        const res = await admin(c.url, 'POST', `/api/v1/flags/kill-me/environments/${c.env}/${action}${waitQuery}`);
        const apiMs = now() - t;
        if (res.status !== 200) throw new Error(`${action} answered ${res.status}`);
        await waitFor(async () => (await counts(c.name)).times >= CLIENTS, 5_000);
        const parts = await both({ cmd: 'collect', group: c.name });
        const lat = parts.flatMap((p) => p.times as number[]).map((x) => x - t);
        if (!record) return;
        const s = stats.get(c.name)!;
        // Worker 0's SDKs are on A, worker 1's on B (split); on the baseline both on one server.
        s.p99First.push(
          quantile(
            (parts[0].times as number[]).map((x) => x - t),
            0.99,
          ),
        );
        s.p99Second.push(
          quantile(
            (parts[1].times as number[]).map((x) => x - t),
            0.99,
          ),
        );
        if (lat.length < CLIENTS) console.log(`${c.name} ${action}: only ${lat.length}/${CLIENTS} applied within 5 s`);
        s.p50.push(median(lat));
        s.p99.push(quantile(lat, 0.99));
        s.max.push(Math.max(...lat));
        s.api.push(apiMs);
        const d = res.body?.delivery;
        if (d && WAIT_MS > 0) s.receipts.push(`${d.applied}/${d.connected}${d.complete ? '' : ' incomplete'}`);
      };
      // Unrecorded rounds first (JIT warm-up in servers and clients).
      for (let r = 0; r < 6; r++) for (const c of configs) await once(c, r % 2 === 0 ? 'kill' : 'revive', false);
      for (let r = 0; r < rounds * 2; r++) {
        const order = r % 2 === 0 ? configs : [...configs].reverse();
        for (const c of order) {
          await once(c, r % 2 === 0 ? 'kill' : 'revive', true);
          await sleep(100);
        }
      }
      const s = stats.get('split')!;
      const b = stats.get('base')!;
      console.log(`split p99 per round: ${s.p99.map((x) => fmt(x)).join(' ')} ms; receipts ${[...new Set(s.receipts)].join(', ')}`);
      console.log(`base  p99 per round: ${b.p99.map((x) => fmt(x)).join(' ')} ms; receipts ${[...new Set(b.receipts)].join(', ')}`);
      const ratios = s.p99.map((x, i) => x / b.p99[i]!);
      results.push([
        `kill through A → ${CLIENTS} SDKs, ${half} on A + ${half} on B`,
        `p50 ${fmt(median(s.p50))} ms, p99 ${fmt(median(s.p99))} ms, max ${fmt(median(s.max))} ms (medians of ${s.p99.length} rounds; p99 of the SDKs on A ${fmt(median(s.p99First))} ms, on B ${fmt(median(s.p99Second))} ms; ${WAIT_MS > 0 ? `receipt answered in ${fmt(median(s.api))} ms` : 'no receipt asked'})`,
        'p99 ≤ 60 ms',
      ]);
      results.push([
        `baseline: the same ${CLIENTS} SDKs ${base.label}`,
        `p50 ${fmt(median(b.p50))} ms, p99 ${fmt(median(b.p99))} ms, max ${fmt(median(b.max))} ms; replicas/baseline p99 ${fmt(median(ratios), 2)}× (median of per-round ratios; baseline ${WAIT_MS > 0 ? 'receipt answered' : 'write acknowledged'} in ${fmt(median(b.api))} ms)`,
        'one node today ≈ 40 ms',
      ]);
      json.kill = {
        split: {
          p50: round(median(s.p50)),
          p99: round(median(s.p99)),
          max: round(median(s.max)),
          apiMs: round(median(s.api)),
          p99OnA: round(median(s.p99First)),
          p99OnB: round(median(s.p99Second)),
          p99s: s.p99.map((x) => round(x)),
        },
        baseline: {
          kind: baseline,
          p50: round(median(b.p50)),
          p99: round(median(b.p99)),
          max: round(median(b.max)),
          apiMs: round(median(b.api)),
          p99s: b.p99.map((x) => round(x)),
        },
        ratioP99: round(median(ratios), 2),
        waitMs: WAIT_MS,
        receipts: [...new Set(s.receipts)],
      };
      await both({ cmd: 'close', group: 'split' });
      await both({ cmd: 'close', group: 'base' });
    });

    // ---- CPU per change: B follows the log and records receipts for 1,000 SDKs; A writes
    await run('cpu', 150_000, async () => {
      // 1,000 SDKs on B (changes written through A), and 1,000 more on the SQLite server S for comparison: the same
      // delivery to the same number of SDKs on one node, where receipts stay in memory and nothing follows a log.
      await connect('cpu', [
        { url: B.url, key: PROCESS_SDK_KEY },
        { url: B.url, key: PROCESS_SDK_KEY },
      ]);
      await connect('cpuS', [
        { url: S.url, key: PROCESS_SDK_KEY },
        { url: S.url, key: PROCESS_SDK_KEY },
      ]);
      const toggles = new Map<string, number>();
      const changes = async (base: string, n: number) => {
        const start = performance.now();
        for (let i = 0; i < n; i++) {
          const wait = start + i * CHANGE_INTERVAL - performance.now();
          if (wait > 0) await sleep(wait);
          const k = toggles.get(base) ?? 0;
          toggles.set(base, k + 1);
          const r = await admin(base, 'POST', `/api/v1/flags/kill-me/environments/production/${k % 2 === 0 ? 'kill' : 'revive'}${waitQuery}`);
          if (r.status !== 200) throw new Error(`change answered ${r.status}`);
        }
      };
      await changes(A.url, 10);
      await changes(S.url, 10);
      await sleep(1000);
      const pids = { A: A.child.pid!, B: B.child.pid!, S: S.child.pid! };
      // PostgreSQL's side: its CPU (postmaster and children) and the WAL it writes, read on one connection of our own.
      const { default: postgres } = await import('postgres');
      const sql = postgres(db.url, { max: 1, onnotice: () => {}, fetch_types: false });
      const [backend] = await sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      const postmaster = Number(statFields(backend!.pid)?.[1]);
      const walBytes = async () => {
        const [row] = await sql<{ lsn: string }[]>`SELECT pg_current_wal_lsn()::text AS lsn`;
        const [hi = '0', lo = '0'] = row!.lsn.split('/');
        return Number((BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`));
      };
      type Sample = { at: number; A: number; B: number; S: number; PG: number; wal: number };
      const sample = async (): Promise<Sample> => {
        const wal = await walBytes();
        return { at: performance.now(), A: cpuMs(pids.A), B: cpuMs(pids.B), S: cpuMs(pids.S), PG: pgCpuMs(postmaster), wal };
      };
      const diff = (x: Sample, y: Sample) => ({ wall: y.at - x.at, A: y.A - x.A, B: y.B - x.B, S: y.S - x.S, PG: y.PG - x.PG, wal: y.wal - x.wal });
      /** CHANGES changes through `base`, paced, then until every SDK of `group` applied them (or 500 ms more). */
      const changeWindow = async (base: string, group: string, windowMs: number) => {
        await both({ cmd: 'arm', group });
        const x = await sample();
        await changes(base, CHANGES);
        await waitFor(async () => (await counts(group)).times >= CLIENTS * CHANGES, 500);
        const rest = x.at + windowMs - performance.now();
        if (rest > 0) await sleep(rest);
        const d = diff(x, await sample());
        const applied = (await counts(group)).times;
        await both({ cmd: 'collect', group });
        return { ...d, applied };
      };
      const windowMs = CHANGES * CHANGE_INTERVAL + 500;
      const per = { B: [] as number[], A: [] as number[], S: [] as number[], PG: [] as number[], wal: [] as number[] };
      const idle = { A: [] as number[], B: [] as number[], S: [] as number[], PG: [] as number[], wal: [] as number[] };
      const applied: number[] = [];
      const per1000 = 1000 / CLIENTS;
      const cpuRounds = Math.max(2, Math.ceil(rounds / 2));
      for (let r = 0; r < cpuRounds; r++) {
        // Idle window: every SDK connected, no change. Its CPU per wall ms is subtracted from the change windows.
        const x = await sample();
        await sleep(windowMs);
        const i = diff(x, await sample());
        const rate = { A: i.A / i.wall, B: i.B / i.wall, S: i.S / i.wall, PG: i.PG / i.wall, wal: i.wal / i.wall };
        for (const k of ['A', 'B', 'S', 'PG', 'wal'] as const) idle[k].push(rate[k] * 1000);
        const onB = await changeWindow(A.url, 'cpu', windowMs);
        const onS = await changeWindow(S.url, 'cpuS', windowMs);
        per.B.push(((onB.B - rate.B * onB.wall) / CHANGES) * per1000);
        per.A.push((onB.A - rate.A * onB.wall) / CHANGES);
        per.S.push(((onS.S - rate.S * onS.wall) / CHANGES) * per1000);
        per.PG.push((onB.PG - rate.PG * onB.wall) / CHANGES);
        per.wal.push((onB.wal - rate.wal * onB.wall) / CHANGES);
        applied.push(onB.applied, onS.applied);
        console.log(
          `round ${r}: through A: B ${fmt(onB.B)} ms CPU, A ${fmt(onB.A)} in ${fmt(onB.wall)} ms, ${onB.applied}/${CLIENTS * CHANGES} applied; ` +
            `on S: ${fmt(onS.S)} ms CPU in ${fmt(onS.wall)} ms, ${onS.applied} applied; idle (ms CPU/s) A ${fmt(rate.A * 1000)} B ${fmt(rate.B * 1000)} S ${fmt(rate.S * 1000)} ` +
            `PG ${fmt(rate.PG * 1000)}, WAL ${fmt(rate.wal, 0)} KB/s → per change: B ${fmt(per.B[r]!, 2)}, A ${fmt(per.A[r]!, 2)}, S ${fmt(per.S[r]!, 2)}, ` +
            `PG ${fmt(per.PG[r]!, 2)} ms, WAL ${fmt(per.wal[r]! / 1024, 1)} KiB`,
        );
      }
      const rows = await withAdmin(
        db.url,
        (sql) => sql<{ replica: string; bytes: number }[]>`SELECT replica, length(sdks) AS bytes FROM replica_sdks WHERE environment = 'production'`,
      );
      const rowBytes = Math.max(0, ...rows.map((x) => Number(x.bytes)));
      const how = `medians of ${per.B.length} rounds of ${CHANGES} changes every ${CHANGE_INTERVAL} ms${WAIT_MS > 0 ? ' with receipts' : ''}, idle CPU subtracted`;
      results.push([
        'replica B CPU per change per 1,000 SDKs on it (follow the log, deliver, record receipts)',
        `${fmt(median(per.B), 2)} ms (${how}; B idles at ${fmt(median(idle.B), 1)} ms CPU/s with ${CLIENTS} SDKs, its receipts row ${fmt(rowBytes / 1024, 1)} KiB)`,
        'report',
      ]);
      results.push([
        'the same on one SQLite server (deliver; receipts in memory)',
        `${fmt(median(per.S), 2)} ms (idles at ${fmt(median(idle.S), 1)} ms CPU/s); replica/SQLite ${fmt(median(per.B) / median(per.S), 2)}×`,
        'comparison',
      ]);
      results.push([
        `replica A CPU per change (the writer, no SDKs${WAIT_MS > 0 ? '; reads B’s receipts rows for ?waitMs' : ''})`,
        `${fmt(median(per.A), 2)} ms (idles at ${fmt(median(idle.A), 1)} ms CPU/s)`,
        'comparison',
      ]);
      results.push([
        'PostgreSQL per change (both replicas’ statements: the write, log reads, receipts rows)',
        `${fmt(median(per.PG), 2)} ms CPU, ${fmt(median(per.wal) / 1024, 1)} KiB WAL (idle: ${fmt(median(idle.PG), 1)} ms CPU/s, ` +
          `${fmt(median(idle.wal) / 1024, 1)} KiB WAL/s, mostly each replica's receipts row rewritten every second)`,
        'comparison',
      ]);
      json.cpu = {
        followerMsPerChangePer1000Sdks: round(median(per.B), 2),
        sqliteMsPerChangePer1000Sdks: round(median(per.S), 2),
        writerMsPerChange: round(median(per.A), 2),
        postgresMsPerChange: round(median(per.PG), 2),
        walBytesPerChange: round(median(per.wal), 0),
        walBytesPerSecondIdle: round(median(idle.wal), 0),
        rounds: { B: per.B.map((x) => round(x, 2)), S: per.S.map((x) => round(x, 2)), A: per.A.map((x) => round(x, 2)) },
        idleMsPerSecond: { A: round(median(idle.A), 1), B: round(median(idle.B), 1), S: round(median(idle.S), 1), PG: round(median(idle.PG), 1) },
        receiptsRowBytes: rowBytes,
        applied,
      };
      await both({ cmd: 'close', group: 'cpu' });
      await both({ cmd: 'close', group: 'cpuS' });
      await sql.end({ timeout: 5 });
    });

    // ---- replica SIGKILL → its SDKs serve the new value from the other replica
    await run('failover', 40_000 * FAILOVER_ROUNDS, async () => {
      const proxy = await startTcpProxy([
        { host: '127.0.0.2', port: aPort },
        { host: '127.0.0.3', port: bPort },
      ]);
      const p50s: number[] = [];
      const p99s: number[] = [];
      const maxes: number[] = [];
      const onB: number[] = [];
      const moved: number[] = [];
      const attemptsMax: number[] = [];
      const attemptsOne: number[] = [];
      let k = 0;
      try {
        for (let r = 0; r < FAILOVER_ROUNDS; r++) {
          await connect('fo', [
            { url: proxy.url, key: PROCESS_SDK_KEY },
            { url: proxy.url, key: PROCESS_SDK_KEY },
          ]);
          await sleep(500);
          await both({ cmd: 'arm', group: 'fo' });
          const action = k++ % 2 === 0 ? 'kill' : 'revive';
          const t = now();
          A.child.kill('SIGKILL');
          const res = await admin(B.url, 'POST', `/api/v1/flags/kill-me/environments/production/${action}`);
          if (res.status !== 200) throw new Error(`${action} through B answered ${res.status}`);
          const done = await waitFor(async () => {
            const c = await counts('fo');
            return c.stale > 0 && c.staleFlipped >= c.stale && c.times >= CLIENTS;
          }, 15_000);
          const parts = await both({ cmd: 'collect', group: 'fo' });
          const fromA: number[] = [];
          const fromB: number[] = [];
          const tries: number[] = [];
          let missing = 0;
          const errors: Record<string, number> = {};
          for (const p of parts) {
            for (const [m, n] of Object.entries(p.errors as Record<string, number>)) errors[m] = (errors[m] ?? 0) + n;
            for (let i = 0; i < p.flipAt.length; i++) {
              const wasOnA = p.staleAt[i] !== null && Number.isFinite(p.staleAt[i]);
              const flip = p.flipAt[i] !== null && Number.isFinite(p.flipAt[i]) ? (p.flipAt[i] as number) - t : NaN;
              if (wasOnA) tries.push(p.attempts[i] as number);
              if (Number.isNaN(flip)) missing++;
              else (wasOnA ? fromA : fromB).push(flip);
            }
          }
          const lat = fromA;
          p50s.push(median(lat));
          p99s.push(quantile(lat, 0.99));
          maxes.push(lat.length ? Math.max(...lat) : NaN);
          onB.push(quantile(fromB, 0.99));
          moved.push(lat.length);
          attemptsMax.push(tries.length ? Math.max(...tries) : NaN);
          attemptsOne.push(tries.filter((x) => x === 1).length / Math.max(1, tries.length));
          console.log(
            `round ${r}: ${lat.length} SDKs were on A: p50 ${fmt(median(lat))} p99 ${fmt(quantile(lat, 0.99))} max ${fmt(Math.max(...lat))} ms; ` +
              `${fromB.length} on B p99 ${fmt(quantile(fromB, 0.99))} ms; reconnect attempts of those from A: ${fmt(attemptsOne.at(-1)! * 100, 0)}% one, ` +
              `max ${attemptsMax.at(-1)}${missing ? `; ${missing} never served it within 15 s` : ''}${done ? '' : ' (timed out)'}`,
          );
          if (Object.keys(errors).length) console.log(`  SDK errors: ${JSON.stringify(errors)}`);
          await both({ cmd: 'close', group: 'fo' });
          await new Promise<void>((resolve) =>
            A.child.exitCode !== null || A.child.signalCode !== null ? resolve() : A.child.once('exit', () => resolve()),
          );
          if (r < FAILOVER_ROUNDS - 1) {
            A = await startA();
            children.push(A.child);
          }
        }
      } finally {
        await proxy.close();
      }
      results.push([
        `replica SIGKILL → its SDKs (${fmt(median(moved), 0)} of ${CLIENTS}, behind a round-robin proxy) serve the new value from B`,
        `p50 ${fmt(median(p50s), 0)} ms, p99 ${fmt(median(p99s), 0)} ms, max ${fmt(median(maxes), 0)} ms (medians of ${p99s.length} rounds; SDKs already on B: p99 ${fmt(median(onB))} ms; ` +
          `${fmt(median(attemptsOne) * 100, 0)}% reconnected at the first attempt, at most ${Math.max(...attemptsMax)} attempts)`,
        'p99 ≤ 5 s',
      ]);
      json.failover = {
        p50: round(median(p50s), 0),
        p99: round(median(p99s), 0),
        max: round(median(maxes), 0),
        p99s: p99s.map((x) => round(x, 0)),
        movedSdks: moved,
        maxAttempts: attemptsMax,
        onBp99: round(median(onB)),
      };
    });
  } catch (err) {
    console.error(`bench:replicas: ${(err as Error).message}`);
    json.error = (err as Error).message;
    process.exitCode = 1;
  }

  for (const w of workers) if (w.connected) w.send({ id: -1, cmd: 'exit' });
  await sleep(300);
  await Promise.all([A, B, S].map((s) => (s.child.exitCode === null && s.child.signalCode === null ? s.stop() : undefined)));
  await db.drop().catch(() => {});
  await pg.dispose();
  const loadAtEnd = loadavg()[0]!;
  json.machine = { cores: cpus().length, load1Start: round(loadAtStart, 2), load1End: round(loadAtEnd, 2) };
  json.seconds = round((performance.now() - startedAt) / 1000, 0);
  console.log(
    `\nmachine: ${cpus().length} cores, 1-minute load average ${fmt(loadAtStart, 1)} at start, ${fmt(loadAtEnd, 1)} at end; ` +
      `${fmt((performance.now() - startedAt) / 1000, 0)} s in all`,
  );
  console.log('\n| measurement | result | goal |\n|---|---|---|');
  for (const [m, r, g] of results) console.log(`| ${m} | ${r} | ${g} |`);
  console.log(JSON.stringify(json));
  clearTimeout(hardLimit);
  process.exit(process.exitCode ?? 0);
}

const role = process.argv.indexOf('--role') >= 0 ? process.argv[process.argv.indexOf('--role') + 1] : 'main';
if (role === 'sdk-worker') await sdkWorker();
else if (role === 'metrics-loader') await metricsLoader();
else await main();
