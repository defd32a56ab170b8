/**
 * `npm run bench:server`: Aviary's `POST /sdk/v1/evaluate` throughput against a bare fastify route, and the latency
 * of a kill switch while that load runs.
 *
 * - The Aviary server runs as `npm start` does (child process, real SQLite file in WAL mode, every write fsynced
 *   before it is acknowledged, log level `info` as by default), with a 10-flag environment: targets, attribute rules,
 *   a segment rule, rollouts.
 * - The baseline is a bare fastify process (no logger, no hooks, no schemas) whose one route parses the same JSON body
 *   and answers the same 10-flag JSON (Aviary's own answer to the benchmark request, serialized by JSON.stringify).
 * - autocannon (in this process) loads one server at a time. Each round runs three loads, in an order that rotates
 *   so drift on this shared machine hits all alike: the bare route; Aviary alone (the like-for-like comparison the
 *   goal is about: both servers do nothing but answer the load); and Aviary while a separate prober process
 *   alternates `POST .../kill` and `.../revive` on one of the 10 flags every 50 ms, reporting each call's latency
 *   (the kill p99 under load, over all rounds), which also shows what 20 durable writes a second cost the route.
 *   The table reports each round and the medians. The report separates the disk's share of kill latency: the
 *   server's own fsync timings (`aviary_wal_fsync_seconds`) and, before any load, a loop of fdatasyncs of a WAL-like
 *   file beside the database run by the prober (no server involved).
 *
 * Options: --rounds 5 --duration 5 (seconds per measurement) --connections 32. Everything is bounded: the run aborts
 * after a hard time limit and always stops its child processes.
 *
 * `--cpu-prof <dir>` profiles instead of comparing: the Aviary server, then the bare route, each run under
 * `node --cpu-prof` and take the evaluate load alone for `--duration` seconds (after a warm-up); each stops with SIGTERM
 * (so the profile is written), and the report says where their CPU time went per request, side by side: self time by
 * package and by function, and the time inside each stage (hooks, parser, validator, handler, serializer, socket write).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fdatasyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const ADMIN = 'bench-admin-token-0123456789abcdef';
const SDK_KEY = 'bench-sdk-key-production-0123456789';
const KILL_FLAG = 'flag-0';
const BODY = JSON.stringify({ context: { key: 'user-4711', country: 'NL', plan: 'pro', email: 'a@acme.com', appVersion: '4.2.0' } });

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

function stringArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

// ---------------------------------------------------------------------------------------------- child: bare server
async function bareServer(port: number): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ logger: false });
  // The constant is Aviary's own answer to the benchmark request (sent over IPC), so both servers put the same
  // bytes on the wire and the difference is Aviary's work: auth, validation, evaluation, metrics, serialization.
  const answer = await new Promise<unknown>((resolve) => process.once('message', (m: { answer: unknown }) => resolve(m.answer)));
  app.post('/sdk/v1/evaluate', async (request) => {
    // Touch the parsed body so the parse cannot be optimized away.
    if (typeof (request.body as { context?: unknown } | null)?.context !== 'object') throw new Error('no context');
    return answer;
  });
  await app.listen({ port, host: '127.0.0.1' });
  // An orderly exit on SIGTERM, so `--cpu-prof` writes its profile.
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
  process.send?.('ready');
}

// ---------------------------------------------------------------------------------------------- child: kill prober
async function killProber(base: string): Promise<void> {
  const latencies: number[] = [];
  let running = false;
  let kill = true;
  let timer: ReturnType<typeof setInterval> | undefined;
  const tick = async () => {
    const path = `/api/v1/flags/${KILL_FLAG}/environments/production/${kill ? 'kill' : 'revive'}`;
    kill = !kill;
    const t0 = performance.now();
    const res = await fetch(base + path, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${path} answered ${res.status}`);
    latencies.push(performance.now() - t0);
  };
  process.on('message', (msg: string) => {
    if (msg === 'fsync') {
      process.send?.({ fsyncs: fsyncLoop(process.argv[4]!, 100) });
    } else if (msg === 'start' && !running) {
      running = true;
      timer = setInterval(() => void tick().catch((err: unknown) => process.send?.({ error: String(err) })), 50);
    } else if (msg === 'stop') {
      running = false;
      clearInterval(timer);
      process.send?.({ latencies: latencies.splice(0) });
    } else if (msg === 'exit') {
      process.exit(0);
    }
  });
  process.send?.('ready');
}

/**
 * The disk alone: `count` appends of three WAL frames (12 KiB) to a file next to the server's database, each followed
 * by fdatasync, 10 ms apart (ms per fdatasync). What any durable acknowledgement on this disk costs at least.
 */
function fsyncLoop(dir: string, count: number): number[] {
  const file = join(dir, 'fsync-probe-wal');
  const fd = openSync(file, 'w');
  const frames = Buffer.alloc(3 * 4096, 1);
  const out: number[] = [];
  const pause = new Int32Array(new SharedArrayBuffer(4));
  try {
    for (let i = 0; i < count; i++) {
      writeSync(fd, frames);
      const t0 = performance.now();
      fdatasyncSync(fd);
      out.push(performance.now() - t0);
      Atomics.wait(pause, 0, 0, 10);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- main
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

function waitMessage<T>(child: ChildProcess, pred: (m: unknown) => m is T, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child did not answer in time')), timeoutMs);
    const on = (m: unknown) => {
      if (!pred(m)) return;
      clearTimeout(timer);
      child.off('message', on);
      resolve(m);
    };
    child.on('message', on);
  });
}

async function waitReady(url: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`${url} not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function admin(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** Ten flags of every kind, with targets, attribute rules, a segment rule and rollouts, all enabled in production. */
async function seed(base: string): Promise<void> {
  await admin(base, 'POST', '/api/v1/segments', {
    key: 'staff',
    included: ['user-1'],
    rules: [{ conditions: [{ attribute: 'email', op: 'endsWith', values: ['@acme.com'] }] }],
  });
  for (let i = 0; i < 10; i++) {
    const key = `flag-${i}`;
    const kind = (['boolean', 'string', 'number', 'json'] as const)[i % 4]!;
    const variants =
      kind === 'boolean'
        ? undefined
        : kind === 'string'
          ? [
              { key: 'on', value: 'new' },
              { key: 'off', value: 'old' },
            ]
          : kind === 'number'
            ? [
                { key: 'on', value: 2 },
                { key: 'off', value: 1 },
              ]
            : [
                { key: 'on', value: { layout: 'grid', size: i } },
                { key: 'off', value: { layout: 'list' } },
              ];
    await admin(base, 'POST', '/api/v1/flags', { key, kind, ...(variants ? { variants } : {}) });
    await admin(base, 'PUT', `/api/v1/flags/${key}/environments/production`, {
      enabled: true,
      offVariant: 'off',
      targets: [{ variant: 'on', keys: ['user-1', 'user-2', 'user-3'] }],
      rules: [
        { id: 'beta-countries', conditions: [{ attribute: 'country', op: 'in', values: ['DE', 'FR', 'BE'] }], serve: { variant: 'on' } },
        { id: 'old-app', conditions: [{ attribute: 'appVersion', op: 'semverLt', values: ['4.0.0'] }], serve: { variant: 'off' } },
        ...(i % 2 === 0
          ? [
              {
                id: 'staff',
                conditions: [{ segment: 'staff' }],
                serve: {
                  rollout: {
                    weights: [
                      { variant: 'on', percent: 50 },
                      { variant: 'off', percent: 50 },
                    ],
                  },
                },
              },
            ]
          : []),
      ],
      fallthrough: {
        rollout: {
          weights: [
            { variant: 'on', percent: 10 + i },
            { variant: 'off', percent: 90 - i },
          ],
        },
      },
    });
  }
}

interface LoadResult {
  rps: number;
  /** Server CPU time (user + system) per request, in microseconds: robust to other load on the machine. */
  cpuUsPerRequest: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

/** CPU time (user + system) a process has used, in milliseconds (Linux /proc; NaN elsewhere). */
function cpuMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}
const CLOCK_TICKS = 100;

async function load(url: string, seconds: number, connections: number, headers: Record<string, string>, pid?: number): Promise<LoadResult> {
  const cpu0 = cpuMs(pid);
  const r = await autocannon({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: BODY,
    connections,
    duration: seconds,
  });
  const cpu = cpuMs(pid) - cpu0;
  return {
    rps: r.requests.average,
    cpuUsPerRequest: (cpu * 1000) / Math.max(1, r.requests.total),
    p50: r.latency.p50,
    p99: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
  };
}

/** p50/p99 upper bounds (ms) of one route's `aviary_http_request_duration_seconds` histogram (POST). */
function histogramQuantiles(text: string, route: string): { p50: number; p99: number; count: number } {
  return quantilesOf(
    text,
    'aviary_http_request_duration_seconds_bucket{',
    (line) => line.includes(`route="${route}"`) && line.includes('method="POST"'),
  );
}

/** p50/p99 bucket upper bounds (ms) of a Prometheus histogram's `<prefix>…le="…"} n` lines that pass `pick`. */
function quantilesOf(text: string, prefix: string, pick: (line: string) => boolean): { p50: number; p99: number; count: number } {
  const buckets: [number, number][] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix) || !pick(line)) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (le) buckets.push([le === '+Inf' ? Infinity : Number(le) * 1000, Number(line.slice(line.lastIndexOf(' ') + 1))]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const count = buckets.at(-1)?.[1] ?? 0;
  const at = (q: number) => buckets.find(([, c]) => c >= q * count)?.[0] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), count };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]! : NaN;
};

/** The Aviary server as `npm start` runs it, in its own process; `nodeArgs` go to node (e.g. `--cpu-prof`). */
function spawnAviary(port: number, dir: string, nodeArgs: string[] = []): ChildProcess {
  // node itself (with tsx as a loader) rather than the tsx CLI, so the pid we stop is the server's own.
  return spawn(process.execPath, [...nodeArgs, '--import', 'tsx', '--conditions=aviary-source', 'server/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      AVIARY_HOST: '127.0.0.1',
      AVIARY_PORT: String(port),
      AVIARY_DB: join(dir, 'aviary.db'),
      AVIARY_ADMIN_TOKEN: ADMIN,
      AVIARY_SDK_KEY_PRODUCTION: SDK_KEY,
      // npm start's default level (info): what an operator runs is what is measured.
      AVIARY_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function main(): Promise<void> {
  const rounds = arg('rounds', 5);
  const seconds = arg('duration', 5);
  const connections = arg('connections', 32);
  const hardLimitMs = (rounds * 3 * (seconds + 2) + 60) * 1000;
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'aviary-bench-'));
  const stopAll = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const hardLimit = setTimeout(() => {
    process.stderr.write(`bench:server exceeded its ${hardLimitMs / 1000} s limit; stopping\n`);
    stopAll();
    process.exit(1);
  }, hardLimitMs);
  hardLimit.unref();

  try {
    const aviaryPort = await freePort();
    const barePort = await freePort();
    const aviary = spawnAviary(aviaryPort, dir);
    children.push(aviary);
    const tsxArgs = ['--import', 'tsx', '--conditions=aviary-source'];
    const bare = fork(SELF, ['--bare-server', String(barePort)], { execArgv: tsxArgs, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    children.push(bare);
    const aviaryBase = `http://127.0.0.1:${aviaryPort}`;
    await waitReady(`${aviaryBase}/readyz`, 30_000);
    await seed(aviaryBase);
    const prober = fork(SELF, ['--kill-prober', aviaryBase, dir], { execArgv: tsxArgs, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    children.push(prober);
    await waitMessage(prober, (m): m is 'ready' => m === 'ready', 30_000);
    prober.on('message', (m: unknown) => {
      if (m && typeof m === 'object' && 'error' in m) process.stderr.write(`kill prober: ${(m as { error: string }).error}\n`);
    });

    const aviaryUrl = `${aviaryBase}/sdk/v1/evaluate`;
    const bareUrl = `http://127.0.0.1:${barePort}/sdk/v1/evaluate`;
    const auth = { authorization: `Bearer ${SDK_KEY}` };
    // Sanity: both answer 200 to the benchmark request, and Aviary evaluates all ten flags.
    const check = await fetch(aviaryUrl, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: BODY });
    const evaluated = (await check.json()) as { flags: Record<string, unknown> };
    if (check.status !== 200 || Object.keys(evaluated.flags).length !== 10) throw new Error(`unexpected evaluate answer ${check.status}`);
    bare.send({ answer: evaluated });
    await waitMessage(bare, (m): m is 'ready' => m === 'ready', 30_000);
    // Warm both (JIT, connection pools) before measuring.
    await load(bareUrl, 2, connections, {});
    await load(aviaryUrl, 2, connections, auth);

    // The disk alone, no server involved: fdatasync latency of a WAL-like file in the database's directory.
    prober.send('fsync');
    const diskFsyncs = (await waitMessage(prober, (m): m is { fsyncs: number[] } => !!m && typeof m === 'object' && 'fsyncs' in m, 30_000)).fsyncs;

    // Kill latency with no other load, for reference: what the commit itself costs on this disk.
    prober.send('start');
    await new Promise((r) => setTimeout(r, 2000));
    prober.send('stop');
    const idleKills = (await waitMessage(prober, (m): m is { latencies: number[] } => !!m && typeof m === 'object' && 'latencies' in m, 10_000))
      .latencies;

    const rows: { round: number; bare: LoadResult; aviary: LoadResult; withKills: LoadResult }[] = [];
    const kills: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const runBare = () => load(bareUrl, seconds, connections, {}, bare.pid);
      const runAviary = () => load(aviaryUrl, seconds, connections, auth, aviary.pid);
      // The same load while the prober flips a kill switch every 50 ms: the kill latency under load, and what 20
      // durable writes a second cost the evaluate route.
      const runWithKills = async () => {
        prober.send('start');
        const r = await load(aviaryUrl, seconds, connections, auth, aviary.pid);
        prober.send('stop');
        const { latencies } = await waitMessage(
          prober,
          (m): m is { latencies: number[] } => !!m && typeof m === 'object' && 'latencies' in m,
          10_000,
        );
        kills.push(...latencies);
        return r;
      };
      // Rotate the order, so none of the three always runs on a warmer or cooler machine.
      const runs = [runBare, runAviary, runWithKills];
      const results = new Map<unknown, LoadResult>();
      for (let i = 0; i < runs.length; i++) {
        const run = runs[(i + round - 1) % runs.length]!;
        results.set(run, await run());
      }
      const row = { round, bare: results.get(runBare)!, aviary: results.get(runAviary)!, withKills: results.get(runWithKills)! };
      rows.push(row);
      process.stderr.write(
        `round ${round}: bare ${row.bare.rps.toFixed(0)} req/s, aviary ${row.aviary.rps.toFixed(0)} req/s, aviary with kills ${row.withKills.rps.toFixed(0)} req/s\n`,
      );
    }
    prober.send('exit');
    // The server's own view of the kill route (from request received to response sent), from its Prometheus
    // histogram: separates server time from time the prober's request spent waiting for a CPU on this machine.
    const metricsText = await (await fetch(`${aviaryBase}/metrics`)).text();
    const serverKill = histogramQuantiles(metricsText, '/api/v1/flags/:key/environments/:env/kill');
    // Every WAL fsync the server ran (kills, revives and the seeding writes), as the server timed them.
    const serverFsync = quantilesOf(metricsText, 'aviary_wal_fsync_seconds_bucket{', () => true);

    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    const med = (f: (r: (typeof rows)[number]) => number) => median(rows.map(f));
    const lines = [
      `## bench:server — POST /sdk/v1/evaluate (10 flags), ${rounds} interleaved rounds × ${seconds} s, ${connections} connections`,
      '',
      'Each round loads the bare route, Aviary alone, and Aviary while a kill switch flips every 50 ms (order rotated).',
      '',
      '| round | bare req/s | Aviary req/s | **ratio** | Aviary + kills req/s | ratio with kills | bare CPU µs/req | Aviary CPU µs/req | with kills CPU µs/req | p99 ms bare / Aviary / with kills | Aviary non-2xx |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows.map(
        (r) =>
          `| ${r.round} | ${fmt(r.bare.rps)} | ${fmt(r.aviary.rps)} | ${(r.aviary.rps / r.bare.rps).toFixed(3)} | ${fmt(r.withKills.rps)} | ${(r.withKills.rps / r.bare.rps).toFixed(3)} | ${r.bare.cpuUsPerRequest.toFixed(1)} | ${r.aviary.cpuUsPerRequest.toFixed(1)} | ${r.withKills.cpuUsPerRequest.toFixed(1)} | ${r.bare.p99} / ${r.aviary.p99} / ${r.withKills.p99} | ${r.aviary.non2xx + r.aviary.errors + r.withKills.non2xx + r.withKills.errors} |`,
      ),
      `| **median** | **${fmt(med((r) => r.bare.rps))}** | **${fmt(med((r) => r.aviary.rps))}** | **${med((r) => r.aviary.rps / r.bare.rps).toFixed(3)}** (goal ≥ 0.75: a plain fastify route with auth, validation and a response schema) | ${fmt(med((r) => r.withKills.rps))} | ${med((r) => r.withKills.rps / r.bare.rps).toFixed(3)} | ${med((r) => r.bare.cpuUsPerRequest).toFixed(1)} | ${med((r) => r.aviary.cpuUsPerRequest).toFixed(1)} | ${med((r) => r.withKills.cpuUsPerRequest).toFixed(1)} | ${med((r) => r.bare.p99)} / ${med((r) => r.aviary.p99)} / ${med((r) => r.withKills.p99)} | |`,
      '',
      `Kill switch under that load (${kills.length} alternating kill/revive calls, durable commit each): ` +
        `p50 ${quantile(kills, 0.5).toFixed(2)} ms, p99 **${quantile(kills, 0.99).toFixed(2)} ms** (goal < 20 ms), max ${Math.max(...kills).toFixed(2)} ms.`,
      `Kill switch with no other load (${idleKills.length} calls): p50 ${quantile(idleKills, 0.5).toFixed(2)} ms, p99 ${quantile(idleKills, 0.99).toFixed(2)} ms.`,
      `Server-side time of the kill route over the whole run (Prometheus histogram, bucket upper bounds): p50 ≤ ${serverKill.p50} ms, p99 ≤ ${serverKill.p99} ms (${serverKill.count} calls).`,
      `WAL fsyncs as the server timed them (Prometheus aviary_wal_fsync_seconds, bucket upper bounds): p50 ≤ ${serverFsync.p50} ms, p99 ≤ ${serverFsync.p99} ms (${serverFsync.count} fsyncs).`,
      `The disk alone (${diskFsyncs.length} fdatasyncs of 12 KiB appends to a file beside the database, no server): ` +
        `p50 ${quantile(diskFsyncs, 0.5).toFixed(2)} ms, p99 ${quantile(diskFsyncs, 0.99).toFixed(2)} ms, max ${Math.max(...diskFsyncs).toFixed(2)} ms.`,
      `Machine load average at the end: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' / ')} (1/5/15 min) on ${cpus().length} cores.`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    clearTimeout(hardLimit);
    stopAll();
  }
}

// ---------------------------------------------------------------------------------------------- --cpu-prof
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives, for the per-package breakdown. */
function packageOf(url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : `generated code (ajv validators, fast-json-stringify serializers): ${name || '(anonymous)'}`;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) {
    const m = /^node:internal\/(?:streams\/|http|net|dgram|timers|process|event|buffer|url|querystring)?/.exec(url);
    return `node: ${m ? url.replace(/^node:internal\//, '').replace(/[/_].*$/, '') : url.slice(5)}`;
  }
  const at = url.indexOf('/server/');
  if (at >= 0) return `aviary ${url.slice(at + 1)}`;
  const sdk = url.indexOf('/sdk/');
  if (sdk >= 0) return `aviary ${url.slice(sdk + 1)}`;
  return url;
}

/** CPU time (µs) of one profiled server over its load window, by package, by function (self) and inclusive. */
interface ProfileSummary {
  requests: number;
  total: number;
  idle: number;
  byPackage: Map<string, number>;
  byFunction: Map<string, number>;
  inclusive: Map<string, number>;
}

/**
 * Reads a .cpuprofile and sums CPU time over a window of the monotonic clock (µs): V8 stamps samples with
 * CLOCK_MONOTONIC, the clock `process.hrtime` reads in any process on this machine, so the bench can say when its
 * load ran and boot, seeding, warm-up and shutdown fall outside.
 */
function summarizeProfile(file: string, window: { from: number; to: number }, requests: number): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const summary: ProfileSummary = { requests, total: 0, idle: 0, byPackage: new Map(), byFunction: new Map(), inclusive: new Map() };
  const self = new Map<number, number>();
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (t < window.from || t > window.to) continue;
    // timeDeltas[i + 1]: the time from sample i to the next one, spent in sample i's stack.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const id = profile.samples[i]!;
    if (byId.get(id)!.callFrame.functionName === '(idle)') {
      summary.idle += dt;
      continue;
    }
    self.set(id, (self.get(id) ?? 0) + dt);
    summary.total += dt;
  }
  const label = (n: ProfileNode) => {
    const { functionName, url, lineNumber } = n.callFrame;
    const where =
      url === '' ? '' : ` ${url.replace(/^.*\/(node_modules\/|server\/|sdk\/|bench\/)/, '$1').replace(/^file:\/\//, '')}:${lineNumber + 1}`;
    return `${functionName || '(anonymous)'}${where}`;
  };
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const pkg = packageOf(n.callFrame.url, n.callFrame.functionName);
    add(summary.byPackage, pkg.startsWith('generated code') ? 'generated code (ajv validators, fast-json-stringify serializers)' : pkg, us);
    add(summary.byFunction, label(n), us);
    // Inclusive: each distinct function on the stack once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (seen.has(l)) continue;
      seen.add(l);
      add(summary.inclusive, l, us);
    }
  }
  return summary;
}

/** Tables comparing the two profiles, per request: the rows are the `n` largest of Aviary's. */
function compareProfiles(aviary: ProfileSummary, bare: ProfileSummary): string[] {
  const per = (p: ProfileSummary, us: number | undefined) => (us === undefined || p.requests === 0 ? '' : (us / p.requests).toFixed(2));
  const table = (title: string, pick: (p: ProfileSummary) => Map<string, number>, n: number, min: number) => [
    `| ${title} | Aviary µs/req | bare µs/req |`,
    '| --- | ---: | ---: |',
    ...[...new Set([...pick(aviary).keys(), ...pick(bare).keys()])]
      .map((k) => [k, Math.max((pick(aviary).get(k) ?? 0) / aviary.requests, (pick(bare).get(k) ?? 0) / bare.requests)] as const)
      .filter(([, v]) => v >= min)
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k]) => `| ${k.replaceAll('|', '\\|')} | ${per(aviary, pick(aviary).get(k))} | ${per(bare, pick(bare).get(k))} |`),
    '',
  ];
  return [
    `On CPU per request (the sampler's view, over the load window): Aviary **${per(aviary, aviary.total)} µs**, bare **${per(bare, bare.total)} µs** ` +
      `(${aviary.requests.toLocaleString('en-US')} and ${bare.requests.toLocaleString('en-US')} requests; idle ${(aviary.idle / 1000).toFixed(0)} and ${(bare.idle / 1000).toFixed(0)} ms).`,
    '',
    ...table('self time by package', (p) => p.byPackage, 30, 0.05),
    ...table('self time by function', (p) => p.byFunction, 40, 0.1),
    ...table('inclusive time (the function and everything it calls)', (p) => p.inclusive, 90, 0.1),
  ];
}

/** The monotonic clock in µs (the clock of V8's profile timestamps). */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** `duration` seconds of the evaluate load after a 2 s warm-up: the requests answered and when (monotonic µs) it ran. */
async function profiledLoad(
  url: string,
  seconds: number,
  connections: number,
  headers: Record<string, string>,
  pid: number | undefined,
): Promise<{ requests: number; rps: number; cpuUsPerRequest: number; window: { from: number; to: number } }> {
  const opts = { url, method: 'POST' as const, headers: { 'content-type': 'application/json', ...headers }, body: BODY, connections };
  const warm = await autocannon({ ...opts, duration: 2 });
  const cpu0 = cpuMs(pid);
  const from = monotonicUs();
  const r = await autocannon({ ...opts, duration: seconds });
  const to = monotonicUs();
  const cpu = cpuMs(pid) - cpu0;
  if (r.non2xx + r.errors + warm.non2xx + warm.errors > 0)
    throw new Error(`${r.non2xx + warm.non2xx} non-2xx answers, ${r.errors + warm.errors} errors`);
  return { requests: r.requests.total, rps: r.requests.average, cpuUsPerRequest: (cpu * 1000) / r.requests.total, window: { from, to } };
}

/** Stops a child with SIGTERM (so node writes its profile) and returns its main thread's .cpuprofile. */
async function stopForProfile(child: ChildProcess, outDir: string): Promise<string> {
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  await exited;
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: the main thread is thread 0 (workers write their own).
  const written = readdirSync(outDir).filter((f) => f.endsWith('.cpuprofile') && f.includes(`.${child.pid}.0.`));
  if (written.length !== 1) throw new Error(`expected one main-thread profile of ${child.pid} in ${outDir}, found ${written.length}`);
  return join(outDir, written[0]!);
}

/**
 * `--cpu-prof <dir>`: the Aviary server and the bare route, each under `node --cpu-prof`, each taking the evaluate
 * load alone (one after the other), then where their CPU time went per request, side by side.
 */
async function profileServers(outDir: string): Promise<void> {
  const seconds = arg('duration', 10);
  const connections = arg('connections', 32);
  const dir = mkdtempSync(join(tmpdir(), 'aviary-bench-'));
  mkdirSync(outDir, { recursive: true });
  const prof = ['--cpu-prof', `--cpu-prof-dir=${outDir}`];
  const children: ChildProcess[] = [];
  const hardLimit = setTimeout(
    () => {
      process.stderr.write('bench:server --cpu-prof exceeded its time limit; stopping\n');
      for (const c of children) c.kill('SIGKILL');
      process.exit(1);
    },
    (2 * seconds + 180) * 1000,
  );
  hardLimit.unref();
  try {
    const port = await freePort();
    const aviary = spawnAviary(port, dir, prof);
    children.push(aviary);
    const base = `http://127.0.0.1:${port}`;
    await waitReady(`${base}/readyz`, 30_000);
    await seed(base);
    const url = `${base}/sdk/v1/evaluate`;
    const auth = { authorization: `Bearer ${SDK_KEY}` };
    const check = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: BODY });
    const answer = await check.json();
    const a = await profiledLoad(url, seconds, connections, auth, aviary.pid);
    const aviaryProfile = await stopForProfile(aviary, outDir);

    const barePort = await freePort();
    const bare = fork(SELF, ['--bare-server', String(barePort)], {
      execArgv: [...prof, '--import', 'tsx', '--conditions=aviary-source'],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    children.push(bare);
    bare.send({ answer });
    await waitMessage(bare, (m): m is 'ready' => m === 'ready', 30_000);
    const b = await profiledLoad(`http://127.0.0.1:${barePort}/sdk/v1/evaluate`, seconds, connections, {}, bare.pid);
    const bareProfile = await stopForProfile(bare, outDir);

    const aviarySummary = summarizeProfile(aviaryProfile, a.window, a.requests);
    const bareSummary = summarizeProfile(bareProfile, b.window, b.requests);
    process.stdout.write(
      [
        `## bench:server --cpu-prof — POST /sdk/v1/evaluate (10 flags), ${seconds} s each, ${connections} connections: Aviary ${a.rps.toFixed(0)} req/s, bare ${b.rps.toFixed(0)} req/s (one after the other, not interleaved)`,
        '',
        `Process CPU (user + system, every thread, from /proc) per request while profiled: Aviary ${a.cpuUsPerRequest.toFixed(1)} µs, bare ${b.cpuUsPerRequest.toFixed(1)} µs.`,
        '',
        ...compareProfiles(aviarySummary, bareSummary),
        `Profiles: ${aviaryProfile}, ${bareProfile} (Chrome DevTools or speedscope open them). Load average: ${loadavg()
          .map((l) => l.toFixed(1))
          .join(' / ')} on ${cpus().length} cores.`,
      ].join('\n') + '\n',
    );
  } finally {
    clearTimeout(hardLimit);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

const mode = process.argv[2];
if (mode === '--bare-server') {
  await bareServer(Number(process.argv[3]));
} else if (mode === '--kill-prober') {
  await killProber(process.argv[3]!);
} else if (stringArg('cpu-prof') !== undefined) {
  await profileServers(resolve(stringArg('cpu-prof')!));
} else {
  await main();
}
