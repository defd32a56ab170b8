/**
 * `npm run bench:abuse`: how long a kill switch takes while something holding an SDK key floods the server (issue 11,
 * CONTRACT §16), against idle. The real server on 127.0.0.1 with a temporary database and default limits; one worker
 * thread sends the flood (fixed concurrency, for a fixed time), another sends kill/revive every 50 ms and, in the
 * metrics scenarios, a legitimate SDK's small report every 100 ms with another key. Bounded: 4 s per scenario.
 * Prints, per scenario, the flood's statuses and the kill's p50 / p99 / max. `--quick` halves the durations.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { buildApp } from '../server/app.js';

const quick = process.argv.includes('--quick');
const DURATION = quick ? 2000 : 4000;

const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const { url, role, durationMs, concurrency, path, token, bodies, adminToken, legitToken, legitBody } = workerData;
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: Math.max(1, concurrency) });
function send(ag, p, body, tok) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const req = http.request({ host: target.hostname, port: target.port, path: p, method: 'POST', agent: ag,
      headers: { authorization: 'Bearer ' + tok, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    });
    req.on('error', () => resolve({ status: 0, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    req.end(body);
  });
}
(async () => {
  const end = Date.now() + durationMs;
  const statuses = {};
  const kills = [];
  const legit = {};
  if (role === 'load') {
    let seq = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const body = bodies[seq % bodies.length].replace('"seq":0', '"seq":' + (++seq));
        const r = await send(agent, path, body, token);
        statuses[r.status] = (statuses[r.status] || 0) + 1;
      }
    }));
  } else {
    const probe = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const legitAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let k = 0, seq = 0;
    const legitLoop = legitBody ? (async () => {
      while (Date.now() < end) {
        const r = await send(legitAgent, '/sdk/v1/metrics', legitBody.replace('"seq":0', '"seq":' + (++seq)), legitToken);
        legit[r.status] = (legit[r.status] || 0) + 1;
        await new Promise((r) => setTimeout(r, 100));
      }
    })() : Promise.resolve();
    while (Date.now() < end) {
      const r = await send(probe, '/api/v1/flags/probe-flag/environments/production/' + (k++ % 2 === 0 ? 'kill' : 'revive'), '{}', adminToken);
      if (r.status === 200) kills.push(r.ms);
      await new Promise((r) => setTimeout(r, 50));
    }
    await legitLoop;
  }
  parentPort.postMessage({ statuses, kills, legit });
})();
`;

interface Result {
  statuses: Record<string, number>;
  kills: number[];
  legit: Record<string, number>;
}

function run(data: Record<string, unknown>): Promise<Result> {
  return new Promise((resolve, reject) => {
    const w = new Worker(workerSource, { eval: true, workerData: data });
    w.once('message', (m: Result) => {
      void w.terminate();
      resolve(m);
    });
    w.once('error', reject);
  });
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
};

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'aviary-bench-abuse-'));
  const adminToken = 'bench-admin-token-0123456789abcdef';
  const serverKey = 'bench-sdk-key-production-0123456789';
  const app = await buildApp({ dbPath: join(dir, 'aviary.db'), adminToken, sdkKeys: { production: serverKey } });
  const auth = { authorization: `Bearer ${adminToken}` };
  const admin = async (method: 'POST' | 'PUT', url: string, payload: unknown) => {
    const res = await app.inject({ method, url, headers: auth, payload: payload as object });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
    return JSON.parse(res.body) as Record<string, unknown>;
  };
  try {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    if (!address || typeof address === 'string') throw new Error('no address');
    const url = `http://127.0.0.1:${address.port}`;
    const state = { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'off' } };
    for (const key of ['probe-flag', 'canary-a', 'acme-staff']) await admin('POST', '/api/v1/flags', { key, kind: 'boolean' });
    await admin('PUT', '/api/v1/flags/probe-flag/environments/production', state);
    await admin('PUT', '/api/v1/flags/canary-a/environments/production', state);
    await admin('PUT', '/api/v1/flags/acme-staff/environments/production', {
      ...state,
      rules: [
        {
          id: 'staff',
          conditions: [{ attribute: 'email', op: 'matches', values: [String.raw`\b[a-z0-9._%+-]{1,64}@acme\.com\b`] }],
          serve: { variant: 'on' },
        },
      ],
    });
    await admin('PUT', '/api/v1/flags/canary-a/environments/production/canary', {
      control: 'off',
      canary: 'on',
      stages: [{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }],
      stageDurationSeconds: 1800,
    });
    // A client-side (public) key: what a browser app ships. (A server without client-side keys gets a server-side one.)
    let publicKey: string;
    try {
      publicKey = (await admin('POST', '/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'web', clientSide: true })).token as string;
    } catch {
      publicKey = (await admin('POST', '/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'web' })).token as string;
    }
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    const report = (sdkId: string, stats: unknown[]) => JSON.stringify({ sdkId, seq: 0, stats });
    const legitBody = report('legit-backend', [{ flag: 'probe-flag', variant: 'off', minute, evaluations: 10, outcomes: 1, errors: 0 }]);
    const latency = { '120': 2, '121': 3, '122': 3, '124': 1, '130': 1 };
    const hostileEmail = Array.from({ length: 250 }, () => 'a.'.repeat(2048));
    const budgetEmail = Array.from({ length: 8 }, () => 'a.'.repeat(500));
    const scenarios: Array<{ name: string; path?: string; token?: string; concurrency?: number; bodies?: string[]; legit?: boolean }> = [
      { name: 'idle' },
      {
        name: 'metrics: 500 rows for flags that do not exist, 32 in flight',
        path: '/sdk/v1/metrics',
        token: publicKey,
        concurrency: 32,
        bodies: Array.from({ length: 8 }, (_, b) =>
          report(
            `junk-${b}`,
            Array.from({ length: 500 }, (_, i) => ({
              flag: `nope-${b}-${i}`,
              variant: 'on',
              minute,
              evaluations: 10,
              outcomes: 10,
              errors: 0,
              latency,
            })),
          ),
        ),
        legit: true,
      },
      {
        name: 'metrics: 10,000 far-future rows of a canary flag, 4 in flight',
        path: '/sdk/v1/metrics',
        token: serverKey,
        concurrency: 4,
        bodies: [
          report(
            'cpu',
            Array.from({ length: 10_000 }, (_, k) => ({
              flag: 'canary-a',
              variant: k % 2 ? 'on' : 'off',
              minute: Date.UTC(2999, 0, 1) + Math.floor(k / 2) * 60_000,
              evaluations: 100,
              outcomes: 100,
              errors: 0,
            })),
          ),
        ],
        legit: true,
      },
      {
        name: 'metrics: valid 1,000-row reports from one client-side key, 64 in flight',
        path: '/sdk/v1/metrics',
        token: publicKey,
        concurrency: 64,
        bodies: Array.from({ length: 8 }, (_, b) =>
          report(
            `flood-${b}`,
            Array.from({ length: 1000 }, (_, i) => ({
              flag: 'canary-a',
              variant: i % 2 ? 'on' : 'off',
              minute: minute - Math.floor(i / 2) * 60_000,
              evaluations: 10,
              outcomes: 10,
              errors: i % 2,
              latency,
            })),
          ),
        ),
        legit: true,
      },
      {
        name: 'canary: forged regressions from one client-side key, 32 in flight',
        path: '/sdk/v1/metrics',
        token: publicKey,
        concurrency: 32,
        bodies: Array.from({ length: 64 }, (_, b) =>
          report(`forged-${b}`, [
            { flag: 'canary-a', variant: 'on', minute, evaluations: 1000, outcomes: 1000, errors: 500 },
            { flag: 'canary-a', variant: 'off', minute, evaluations: 1000, outcomes: 1000, errors: 0 },
          ]),
        ),
        legit: true,
      },
      {
        name: "OFREP: the issue's context (1 MB), 4 in flight",
        path: '/ofrep/v1/evaluate/flags/acme-staff',
        token: publicKey,
        concurrency: 4,
        bodies: [JSON.stringify({ context: { targetingKey: 'u', email: hostileEmail } })],
      },
      {
        name: 'OFREP: contexts at the budget vs the email rule, 16 in flight',
        path: '/ofrep/v1/evaluate/flags/acme-staff',
        token: publicKey,
        concurrency: 16,
        bodies: [JSON.stringify({ context: { targetingKey: 'u', email: budgetEmail } })],
      },
      {
        name: "evaluate: the issue's context (1 MB), 4 in flight",
        path: '/sdk/v1/evaluate',
        token: publicKey,
        concurrency: 4,
        bodies: [JSON.stringify({ context: { key: 'u', email: hostileEmail } })],
      },
      {
        name: 'evaluate: contexts at the budget vs the email rule, 16 in flight',
        path: '/sdk/v1/evaluate',
        token: publicKey,
        concurrency: 16,
        bodies: [JSON.stringify({ context: { key: 'u', email: budgetEmail } })],
      },
    ];
    console.log(
      `kill/revive latency while an SDK key floods the server (${DURATION / 1000} s each; load average before: ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')})`,
    );
    console.log(`${'scenario'.padEnd(74)} ${'flood statuses'.padEnd(26)} kill p50 / p99 / max (n)   legit reports`);
    for (const s of scenarios) {
      const common = { url, adminToken, durationMs: DURATION };
      const [load, probe] = await Promise.all([
        s.path
          ? run({ ...common, role: 'load', path: s.path, token: s.token, concurrency: s.concurrency, bodies: s.bodies })
          : Promise.resolve({ statuses: {}, kills: [], legit: {} }),
        run({ ...common, role: 'probe', concurrency: 1, legitToken: serverKey, legitBody: s.legit ? legitBody : null }),
      ]);
      const k = probe.kills;
      const fmt = (x: number) => `${x.toFixed(1)}`;
      console.log(
        `${s.name.padEnd(74)} ${JSON.stringify(load.statuses).padEnd(26)} ${fmt(quantile(k, 0.5))} / ${fmt(quantile(k, 0.99))} / ${fmt(Math.max(...k))} ms (${k.length})   ${s.legit ? JSON.stringify(probe.legit) : ''}`,
      );
      state.enabled = true;
      await admin('PUT', '/api/v1/flags/probe-flag/environments/production', state);
      // Let queued work drain before the next scenario.
      await new Promise((r) => setTimeout(r, 500));
    }
    const canary = JSON.parse(
      (await app.inject({ method: 'GET', url: '/api/v1/flags/canary-a/environments/production/canary', headers: auth })).body,
    ) as { state: string };
    console.log(`canary-a after the floods: ${canary.state}`);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
