/**
 * `npm run bench:canary`: the guard's statistics on simulated canaries, and metrics ingestion into the real server.
 *
 * 1. False rollbacks: ≥ 1,000 healthy canaries (canary = control), the guard checked after every SDK flush batch,
 *    with zero-tolerance limits (the hardest case for validity) and with the contract's default guard; compared with
 *    a naive fixed-sample z-test at the same α peeking as often.
 * 2. Detection: samples and seconds to catch a doubling of a 1% error rate and a 30% latency regression (every
 *    latency ×1.3, so p95 +30%), at a stated traffic rate.
 * 3. Ingest: the real server on 127.0.0.1 with a temporary database; a worker thread sends SDK flushes (10 rows with
 *    latency histograms each) at a paced rate and, separately, as fast as 64 connections go, while probing the
 *    latency of kill/revive. Rounds interleave idle / paced / max; medians over rounds are reported.
 * Seeded: the simulation reproduces exactly; the HTTP numbers are what this machine did.
 * Flags: `--quick` (fewer canaries and rounds), `--only=sim` or `--only=ingest`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { SqlitePort } from '../server/storage/sqlite-port.js';
import { buildApp } from '../server/app.js';
import { medianP90, seededRandom, simulateCanary, type Scenario } from '../server/canary/simulation.js';
import { DEFAULT_GUARD } from '../server/canary/document.js';

const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const only = [...args].find((a) => a.startsWith('--only='))?.slice('--only='.length);
const runSim = only === undefined || only === 'sim';
const runIngest = only === undefined || only === 'ingest';
const SEED = 20261122;

function pct(x: number, d = 1) {
  return `${(x * 100).toFixed(d)}%`;
}

// ---------------------------------------------------------------------------------------------- 1. false rollbacks
const HEALTHY_CANARIES = quick ? 200 : 1000;
const healthyBase: Scenario = {
  outcomesPerSecond: 1000,
  stagePercents: [1, 5, 25, 50],
  holdSeconds: 300,
  batchSeconds: 10,
  guard: { ...DEFAULT_GUARD },
  control: { errorRate: 0.01, latency: { medianMs: 50, sigma: 0.5 } },
  canary: { errorRate: 0.01, latency: { medianMs: 50, sigma: 0.5 } },
};

function falseRollbacks(label: string, scenario: Scenario, seed: number) {
  const rng = seededRandom(seed);
  let rolledBack = 0;
  let naive = 0;
  let naiveUnsplit = 0;
  const by: Record<string, number> = {};
  const t0 = performance.now();
  for (let i = 0; i < HEALTHY_CANARIES; i++) {
    const r = simulateCanary(scenario, rng);
    if (r.rolledBack) {
      rolledBack++;
      by[r.by ?? '?'] = (by[r.by ?? '?'] ?? 0) + 1;
    }
    if (r.naiveRolledBack) naive++;
    if (r.naiveUnsplitRolledBack) naiveUnsplit++;
  }
  const checks = HEALTHY_CANARIES * scenario.stagePercents.length * (scenario.holdSeconds / scenario.batchSeconds);
  const byText = Object.entries(by)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  console.log(
    `  ${label.padEnd(44)} false rollbacks ${String(rolledBack).padStart(4)}/${HEALTHY_CANARIES} = ${pct(rolledBack / HEALTHY_CANARIES, 2).padStart(6)}${byText ? ` (${byText})` : ''}` +
      `   naive z-test peeking (errors only): at the same α ${pct(naive / HEALTHY_CANARIES, 1).padStart(6)}, at α = 1 − confidence ${pct(naiveUnsplit / HEALTHY_CANARIES, 1).padStart(6)}   (${checks.toLocaleString('en')} checks, ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  return rolledBack / HEALTHY_CANARIES;
}

let strictRate = NaN;
if (runSim) {
  console.log(`\n1. Healthy canaries checked after every ${healthyBase.batchSeconds}-s flush batch`);
  console.log(
    `   ${healthyBase.outcomesPerSecond} outcomes/s, stages ${healthyBase.stagePercents.join('/')}%, ${healthyBase.holdSeconds} s each, 1% errors and lognormal latency (median 50 ms) on both sides, confidence 0.95 (goal ≤ 5%)`,
  );
  strictRate = falseRollbacks(
    'zero-tolerance guard (limits 0, minSamples 500)',
    { ...healthyBase, guard: { ...DEFAULT_GUARD, maxErrorRateIncrease: 0, maxLatencyIncreasePercent: 0 } },
    SEED,
  );
  falseRollbacks('default guard (+1 point errors, +20% latency)', healthyBase, SEED + 1);
}

// ---------------------------------------------------------------------------------------------- 2. detection
const RUNS = quick ? 50 : 200;
const detectionBase: Scenario = {
  outcomesPerSecond: 2000,
  stagePercents: [5],
  // α is split as for the contract's example canary (6 stages), not for this one simulated stage.
  alphaStages: 6,
  holdSeconds: 3600,
  batchSeconds: 1,
  guard: { ...DEFAULT_GUARD, maxErrorRateIncrease: 0.005 },
  control: { errorRate: 0.01, latency: { medianMs: 50, sigma: 0.5 } },
  canary: { errorRate: 0.01, latency: { medianMs: 50, sigma: 0.5 } },
};

function detection(label: string, scenario: Scenario, seed: number) {
  const rng = seededRandom(seed);
  const runs = Array.from({ length: RUNS }, () => simulateCanary(scenario, rng));
  const caught = runs.filter((r) => r.rolledBack);
  const by: Record<string, number> = {};
  for (const r of caught) by[r.by ?? '?'] = (by[r.by ?? '?'] ?? 0) + 1;
  const secs = medianP90(caught.map((r) => r.seconds));
  const samples = medianP90(caught.map((r) => r.canarySamples));
  console.log(
    `  ${label.padEnd(58)} caught ${caught.length}/${RUNS} (${Object.entries(by)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}); canary samples median ${samples.median} (p90 ${samples.p90}); seconds median ${secs.median} (p90 ${secs.p90})`,
  );
}

if (runSim) {
  console.log(
    `\n2. Detection at ${detectionBase.outcomesPerSecond} outcomes/s with the canary at a ${detectionBase.stagePercents[0]}% stage (${(detectionBase.outcomesPerSecond * detectionBase.stagePercents[0]!) / 100} canary outcomes/s), checked every second, 6-stage α split`,
  );
  detection(
    'error rate 1% → 2% (guard maxErrorRateIncrease 0.005)',
    { ...detectionBase, canary: { ...detectionBase.canary, errorRate: 0.02 } },
    SEED + 2,
  );
  detection(
    'latency ×1.3, p95 +30% (guard maxLatencyIncreasePercent 20)',
    { ...detectionBase, canary: { ...detectionBase.canary, latency: { medianMs: 65, sigma: 0.5 } } },
    SEED + 3,
  );
  detection(
    '10% of requests 3× slower (tail only; default guard)',
    { ...detectionBase, guard: { ...DEFAULT_GUARD }, canary: { ...detectionBase.canary, slowShare: 0.1, slowFactor: 3 } },
    SEED + 5,
  );
  detection(
    'error rate 1% → 5% (default guard, +1 point)',
    { ...detectionBase, guard: { ...DEFAULT_GUARD }, canary: { ...detectionBase.canary, errorRate: 0.05 } },
    SEED + 4,
  );
}

// ---------------------------------------------------------------------------------------------- 3. ingest
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const { url, sdkKey, adminToken, mode, rate, durationMs, maxRequests, sdkPrefix, role } = workerData;
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const probeAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function send(path, body, token, ag) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const req = http.request({ host: target.hostname, port: target.port, path, method: 'POST', agent: ag,
      headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    });
    req.on('error', () => resolve({ status: 0, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    req.end(body);
  });
}
const minute = Math.floor(Date.now() / 60000) * 60000;
let seq = 0;
function report() {
  seq++;
  const stats = [];
  for (let f = 0; f < 5; f++) for (const variant of ['on', 'off']) {
    stats.push({ flag: 'bench-' + f, variant, minute, evaluations: 40, reasons: { FALLTHROUGH: 40 }, outcomes: 10, errors: seq % 7 === 0 ? 1 : 0,
      latency: { '120': 2, '121': 3, '122': 3, '124': 1, '130': 1 } });
  }
  return JSON.stringify({ sdkId: sdkPrefix + '-' + (seq % 500), seq, sdk: { name: 'bench', version: '0' }, stats });
}
(async () => {
  const kills = [];
  const statuses = {};
  let sent = 0, done = 0, inflight = 0;
  const start = Date.now();
  const end = start + durationMs;
  // The probe runs in its own worker (role 'probe'), so the load generator's work never inflates its timings.
  let probing = role === 'probe';
  const probe = (async () => {
    let k = 0;
    while (probing) {
      const path = '/api/v1/flags/bench-0/environments/production/' + (k++ % 2 === 0 ? 'kill' : 'revive');
      const r = await send(path, '{}', adminToken, probeAgent);
      if (r.status === 200) kills.push(r.ms);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  if (role === 'probe') {
    await new Promise((r) => setTimeout(r, durationMs));
  } else if (mode !== 'idle') {
    await new Promise((resolveAll) => {
      const pump = () => {
        const now = Date.now();
        if (now >= end || sent >= maxRequests) { if (inflight === 0) resolveAll(); else setTimeout(pump, 5); return; }
        const due = mode === 'paced' ? Math.min(maxRequests, Math.floor(((now - start) / 1000) * rate)) : maxRequests;
        while (sent < due && inflight < 64) {
          sent++; inflight++;
          send('/sdk/v1/metrics', report(), sdkKey, agent).then((r) => { inflight--; done++; statuses[r.status] = (statuses[r.status] || 0) + 1; });
        }
        setTimeout(pump, mode === 'paced' ? 2 : 0);
      };
      pump();
    });
  } else {
    await new Promise((r) => setTimeout(r, durationMs));
  }
  const elapsed = (Date.now() - start) / 1000;
  probing = false;
  await probe;
  agent.destroy(); probeAgent.destroy();
  parentPort.postMessage({ kills, statuses, done, elapsed });
})();
`;

interface RoundResult {
  kills: number[];
  statuses: Record<string, number>;
  done: number;
  elapsed: number;
}

function runWorker(data: Record<string, unknown>): Promise<RoundResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(workerSource, { eval: true, workerData: data });
    w.once('message', (m: RoundResult) => {
      void w.terminate();
      resolve(m);
    });
    w.once('error', reject);
  });
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
}
const median = (xs: number[]) => quantile(xs, 0.5);

async function ingestBench() {
  const dir = mkdtempSync(join(tmpdir(), 'aviary-bench-canary-'));
  const adminToken = 'bench-admin-token-0123456789abcdef';
  const sdkKey = 'bench-sdk-key-production-0123456789';
  const app = await buildApp({ dbPath: join(dir, 'aviary.db'), adminToken, sdkKeys: { production: sdkKey } });
  try {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    if (!address || typeof address === 'string') throw new Error('no address');
    const url = `http://127.0.0.1:${address.port}`;
    for (let f = 0; f < 5; f++) {
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/flags',
        headers: { authorization: `Bearer ${adminToken}` },
        payload: { key: `bench-${f}`, kind: 'boolean' },
      });
      if (res.statusCode !== 201) throw new Error(`flag create failed: ${res.body}`);
    }
    const rounds = quick ? 1 : 3;
    const loadBefore = loadavg();
    const paced = { rate: 900, durationMs: quick ? 4000 : 8000 };
    const results: Record<'idle' | 'paced' | 'max', Array<{ rate: number; p50: number; p99: number; max: number; n: number; bad: number }>> = {
      idle: [],
      paced: [],
      max: [],
    };
    let round = 0;
    for (let r = 0; r < rounds; r++) {
      for (const mode of ['idle', 'paced', 'max'] as const) {
        const durationMs = mode === 'idle' ? 3000 : mode === 'paced' ? paced.durationMs : quick ? 3000 : 5000;
        const data = { url, sdkKey, adminToken, mode, rate: paced.rate, durationMs, maxRequests: 20_000, sdkPrefix: `bench-${round++}` };
        const [load, probe] = await Promise.all([runWorker({ ...data, role: 'load' }), runWorker({ ...data, role: 'probe' })]);
        const res = { ...load, kills: probe.kills };
        const ok = res.statuses['200'] ?? 0;
        const bad = res.done - ok;
        results[mode].push({
          rate: ok / res.elapsed,
          p50: quantile(res.kills, 0.5),
          p99: quantile(res.kills, 0.99),
          max: Math.max(...res.kills),
          n: res.kills.length,
          bad,
        });
      }
    }
    console.log(
      `\n3. Ingest into the real server (HTTP on 127.0.0.1, SQLite WAL, fsync before each acknowledgement), ${rounds} interleaved rounds, medians; load average before: ${loadBefore.map((x) => x.toFixed(1)).join(' ')}`,
    );
    for (const mode of ['idle', 'paced', 'max'] as const) {
      const rs = results[mode];
      const rate = median(rs.map((x) => x.rate));
      console.log(
        `  ${(mode === 'idle' ? 'no ingest load' : mode === 'paced' ? `paced at ${paced.rate}/s` : 'as fast as 64 connections go').padEnd(30)}` +
          ` flushes ${mode === 'idle' ? '-'.padStart(16) : `${Math.round(rate).toLocaleString('en')}/s = ${Math.round(rate * 60).toLocaleString('en')}/min`.padStart(16)}` +
          `   kill/revive latency p50 ${median(rs.map((x) => x.p50)).toFixed(2)} ms, p99 ${median(rs.map((x) => x.p99)).toFixed(2)} ms (max ${Math.max(...rs.map((x) => x.max)).toFixed(1)} ms, ${rs.reduce((a, x) => a + x.n, 0)} probes)` +
          (rs.some((x) => x.bad > 0) ? `   non-200 answers: ${rs.reduce((a, x) => a + x.bad, 0)}` : ''),
      );
    }
    // Every acknowledged flush was counted exactly once.
    const counted = ((app.store as SqlitePort).sqlite.prepare('SELECT COUNT(*) AS n FROM sdk_reports').get() as { n: number }).n;
    // Histogram values carry their series name (`_sum`, `_count`, `_bucket`) at run time; prom-client's type omits it.
    const batch = ((await app.prometheus.registry.getSingleMetric('aviary_metrics_batch_seconds')?.get())?.values ?? []) as Array<{
      metricName?: string;
      labels: Record<string, unknown>;
      value: number;
    }>;
    const sum = batch.find((v) => v.metricName === 'aviary_metrics_batch_seconds_sum')?.value ?? 0;
    const count = batch.find((v) => v.metricName === 'aviary_metrics_batch_seconds_count')?.value ?? 0;
    const under5 = batch.find((v) => v.metricName === 'aviary_metrics_batch_seconds_bucket' && v.labels.le === 0.005)?.value ?? 0;
    console.log(
      `  ingest batches: ${count.toLocaleString('en')}, mean commit ${((sum / Math.max(1, count)) * 1000).toFixed(2)} ms, ${pct(under5 / Math.max(1, count))} under 5 ms`,
    );
    const rows = (app.store as SqlitePort).sqlite
      .prepare("SELECT SUM(evaluations) AS e FROM metrics_minute WHERE flag = 'bench-0' AND variant = 'on'")
      .get() as {
      e: number;
    };
    console.log(
      `  stored: ${counted.toLocaleString('en')} distinct reports; bench-0/on evaluations ${rows.e.toLocaleString('en')} = 40 × reports: ${rows.e === counted * 40 ? 'yes' : 'NO'}`,
    );
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (runIngest) await ingestBench();
console.log(
  `\nseed ${SEED}${quick ? ' (quick)' : ''}; load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')} on ${cpus().length} cores` +
    (runSim ? `; zero-tolerance false-rollback rate ${pct(strictRate, 2)} against a goal of ≤ ${pct(1 - DEFAULT_GUARD.confidence, 0)}` : ''),
);
