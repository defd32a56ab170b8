/**
 * The canary guard's evidence cannot be forged with an SDK key (CONTRACT §16): the reproductions of issue 11, run
 * against the real server over HTTP. A client-side key is public (browsers ship it), so nothing one of its SDK
 * instances, or one burst of its reports, sends may roll a canary back or push it forward; minutes must be within the
 * clock-skew window; only what arrives while the window is open is evidence. Server-side keys are secret: what they
 * report still decides, so a real regression still rolls back at once.
 */
import type { MetricsReport, VariantStats } from '@aviary/sdk/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { api, request, startServer, type TestServer, sqliteOf } from '../helpers/server.js';

let srv: TestServer;
let clock: number | null = null;
const FLAG = 'canary-a';
const path = `/api/v1/flags/${FLAG}/environments/production/canary`;
const now = () => clock ?? Date.now();
const minuteOf = (t: number) => Math.floor(t / 60_000) * 60_000;

async function setup(options: { injectedClock?: boolean } = {}) {
  clock = options.injectedClock ? Date.now() : null;
  srv = await startServer({ canary: { tickMs: 50 }, metrics: { maxDelayMs: 2 }, now });
  const a = api(srv);
  expect((await a.post('/api/v1/flags', { key: FLAG, kind: 'boolean' })).status).toBe(201);
  expect(
    (
      await a.put(`/api/v1/flags/${FLAG}/environments/production`, {
        enabled: true,
        offVariant: 'off',
        targets: [],
        rules: [],
        fallthrough: { variant: 'off' },
      })
    ).status,
  ).toBe(200);
}

afterEach(async () => {
  await srv.close();
  clock = null;
});

async function clientSideKey(name = 'web app'): Promise<string> {
  const res = await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name, clientSide: true });
  expect(res.status).toBe(201);
  expect(res.body.clientSide).toBe(true);
  return res.body.token as string;
}

const startCanary = (extra: Record<string, unknown> = {}) =>
  api(srv).put(path, {
    control: 'off',
    canary: 'on',
    stages: [{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }],
    stageDurationSeconds: 1800,
    ...extra,
  });

function rows(minute: number, on: { outcomes: number; errors: number }, off: { outcomes: number; errors: number }): VariantStats[] {
  return [
    { flag: FLAG, variant: 'on', minute, evaluations: on.outcomes, outcomes: on.outcomes, errors: on.errors },
    { flag: FLAG, variant: 'off', minute, evaluations: off.outcomes, outcomes: off.outcomes, errors: off.errors },
  ];
}

const report = (token: string, body: MetricsReport) => request(srv, 'POST', '/sdk/v1/metrics', { body, token });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe('forged rollback', () => {
  it('one client-side SDK instance reporting a regression decides nothing', async () => {
    await setup();
    const key = await clientSideKey();
    expect((await startCanary()).status).toBe(201);
    // The reproduction, with a client-side (public) key: 50% errors on the canary, none on control.
    const res = await report(key, {
      sdkId: 'x',
      seq: 1,
      stats: rows(minuteOf(Date.now()), { outcomes: 1000, errors: 500 }, { outcomes: 1000, errors: 0 }),
    });
    expect(res.status).toBe(200);
    // Today it was rolled back within 1.5 s; give the guard (50 ms timer, and right after the batch) that long.
    await sleep(1500);
    const s = (await api(srv).get(path)).body;
    expect(s.state).toBe('running');
    expect(s.comparison.decision).toBe('insufficient');
    // One instance counts for at most max(50, minSamples / 10) outcomes per side over the window.
    expect(s.comparison.sources.client).toMatchObject({ instances: { canary: 1, control: 1 }, outcomes: { canary: 50, control: 50 }, capped: 1900 });
    expect((await api(srv).get('/api/v1/audit?resourceType=canary&action=canary.rollback')).body.entries).toEqual([]);
  });

  it('one burst of many client-side instances decides nothing either', async () => {
    await setup();
    const key = await clientSideKey();
    expect((await startCanary()).status).toBe(201);
    const minute = minuteOf(Date.now());
    // 40 made-up instances in one burst, each within the per-instance cap.
    const sent = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        report(key, { sdkId: `forged-${i}`, seq: 1, stats: rows(minute, { outcomes: 50, errors: 25 }, { outcomes: 50, errors: 0 }) }),
      ),
    );
    expect(sent.map((r) => r.status)).toEqual(Array(40).fill(200));
    await sleep(1500);
    const s = (await api(srv).get(path)).body;
    expect(s.state).toBe('running');
    expect(s.comparison.decision).toBe('insufficient');
    expect(s.comparison.sources.client.instances).toEqual({ canary: 40, control: 40 });
  });

  it('client-side evidence is capped per SDK instance', async () => {
    await setup();
    const key = await clientSideKey();
    expect((await startCanary({ guard: { minSamples: 500 } })).status).toBe(201);
    const minute = minuteOf(Date.now());
    for (let seq = 1; seq <= 3; seq++) {
      expect(
        (await report(key, { sdkId: 'one-browser', seq, stats: rows(minute, { outcomes: 40, errors: 0 }, { outcomes: 40, errors: 0 }) })).status,
      ).toBe(200);
    }
    const s = (await api(srv).get(path)).body;
    // minSamples 500 → each instance counts for at most 50 outcomes per side over the window.
    expect(s.comparison.canary.outcomes).toBe(50);
    expect(s.comparison.control.outcomes).toBe(50);
    expect(s.comparison.sources.client.capped).toBe(140);
  });

  it('a real regression reported with a server-side key still rolls back at once, and the audit says where the evidence came from', async () => {
    await setup();
    expect((await startCanary()).status).toBe(201);
    const minute = minuteOf(Date.now());
    const sent = await Promise.all(
      ['backend-1', 'backend-2'].map((sdkId) =>
        report(srv.sdkKeys.production, { sdkId, seq: 1, stats: rows(minute, { outcomes: 500, errors: 250 }, { outcomes: 500, errors: 0 }) }),
      ),
    );
    expect(sent.map((r) => r.status)).toEqual([200, 200]);
    const rolledBack = await until(
      'the automatic rollback',
      async () => {
        const s = (await api(srv).get(path)).body;
        return s.state === 'rolled_back' ? s : undefined;
      },
      1500,
    );
    expect(rolledBack.percent).toBe(0);
    const [entry] = (await api(srv).get('/api/v1/audit?resourceType=canary&action=canary.rollback')).body.entries;
    expect(entry.actor.name).toBe('canary-guard');
    // One backend's report may already have decided (a server-side key's evidence is trusted): the entry counts
    // the instances whose outcomes it weighed.
    const server = entry.after.evidence.sources.server;
    expect(server.keys).toEqual([{ id: 'configured-sdk-production', name: 'AVIARY_SDK_KEY_PRODUCTION', clientSide: false }]);
    expect(server.instances.canary).toBeGreaterThanOrEqual(1);
    expect(server.outcomes).toEqual({ canary: 500 * server.instances.canary, control: 500 * server.instances.control });
    expect(entry.after.evidence.sources.client.instances).toEqual({ canary: 0, control: 0 });
  });

  it('client-side evidence from many instances over more than one minute still rolls a real regression back', async () => {
    await setup({ injectedClock: true });
    const key = await clientSideKey();
    expect((await startCanary({ guard: { minSamples: 100 } })).status).toBe(201);
    let seq = 0;
    const minuteOfTraffic = async () => {
      const minute = minuteOf(clock!);
      // 30 browsers, each 20 outcomes per side: the canary fails 40%, control 5%.
      await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          report(key, { sdkId: `browser-${i}`, seq: ++seq, stats: rows(minute, { outcomes: 10, errors: 4 }, { outcomes: 10, errors: 0 + (i % 2) }) }),
        ),
      );
    };
    await minuteOfTraffic();
    await srv.app.canaries.tick();
    // One minute of one key is one burst: its worst imaginable share is taken out, and nothing is left to decide on.
    let s = (await api(srv).get(path)).body;
    expect(s.state).toBe('running');
    expect(s.comparison.decision).toBe('insufficient');
    clock! += 60_000;
    await minuteOfTraffic();
    clock! += 60_000;
    await minuteOfTraffic();
    await srv.app.canaries.tick();
    s = (await api(srv).get(path)).body;
    expect(s.state).toBe('rolled_back');
    const [entry] = (await api(srv).get('/api/v1/audit?resourceType=canary&action=canary.rollback')).body.entries;
    expect(entry.reason).toMatch(/still a breach without the largest client-side contribution/);
    expect(entry.after.evidence.sources.client).toMatchObject({
      instances: { canary: 30, control: 30 },
      keys: [{ name: 'web app', clientSide: true }],
    });
  });
});

describe('forged promotion', () => {
  it('rows stamped far in the future are refused, and a real 30% error rate is not promoted', async () => {
    await setup();
    // The reproduction: sent before the canary starts, minute 3000-01-01, 100,000,000 clean outcomes.
    const forged = await report(srv.sdkKeys.production, {
      sdkId: 'x',
      seq: 1,
      stats: rows(Date.UTC(3000, 0, 1), { outcomes: 100_000_000, errors: 0 }, { outcomes: 100_000_000, errors: 0 }),
    });
    expect(forged.status).toBe(400);
    expect(forged.headers.get('content-type')).toContain('application/problem+json');
    expect(forged.body.limit).toBe('clock-skew');
    expect(forged.body.errors[0]).toMatchObject({ path: '/stats/0/minute' });
    expect(forged.body.errors[0].message).toMatch(/more than 300 s ahead of the server's clock/);
    expect((await startCanary({ stageDurationSeconds: 1, guard: { minSamples: 100 } })).status).toBe(201);
    const minute = minuteOf(Date.now());
    // Real traffic: the canary fails 30% of the time, control 1%.
    expect(
      (
        await report(srv.sdkKeys.production, {
          sdkId: 'app',
          seq: 1,
          stats: rows(minute, { outcomes: 400, errors: 120 }, { outcomes: 400, errors: 4 }),
        })
      ).status,
    ).toBe(200);
    const done = await until('a decision', async () => {
      const s = (await api(srv).get(path)).body;
      return s.state !== 'running' ? s : undefined;
    });
    expect(done.state).toBe('rolled_back');
    expect(done.stage).toBe(0);
  });

  it('what was reported before the canary started is not its evidence, even for the minute it starts in', async () => {
    await setup({ injectedClock: true });
    // Start at the beginning of a minute, so the report before the start carries the start's minute.
    clock = minuteOf(clock!) + 60_000 + 1_000;
    const minute = minuteOf(clock);
    expect(
      (
        await report(srv.sdkKeys.production, {
          sdkId: 'early',
          seq: 1,
          stats: rows(minute, { outcomes: 1_000_000, errors: 0 }, { outcomes: 1_000_000, errors: 0 }),
        })
      ).status,
    ).toBe(200);
    clock += 2_000;
    expect((await startCanary({ stageDurationSeconds: 1, guard: { minSamples: 100 } })).status).toBe(201);
    clock += 2_000;
    expect(
      (
        await report(srv.sdkKeys.production, {
          sdkId: 'app',
          seq: 1,
          stats: rows(minute, { outcomes: 400, errors: 120 }, { outcomes: 400, errors: 4 }),
        })
      ).status,
    ).toBe(200);
    await srv.app.canaries.tick();
    const s = (await api(srv).get(path)).body;
    expect(s.state).toBe('rolled_back');
    expect(s.lastDecision.why).toMatch(/error rate 30\.00% on 400 outcomes/);
  });
});

describe('bounded guard work', () => {
  it('20 reports of 10,000 far-future rows cost neither the canary GET nor a kill', async () => {
    await setup();
    expect((await startCanary()).status).toBe(201);
    const far = Date.UTC(2999, 0, 1);
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      const stats = Array.from({ length: 10_000 }, (_, k) => ({
        flag: FLAG,
        variant: k % 2 ? 'on' : 'off',
        minute: far + Math.floor(k / 2) * 60_000,
        evaluations: 100,
        outcomes: 100,
        errors: k % 2 ? 50 : 0,
      }));
      statuses.push((await report(srv.sdkKeys.production, { sdkId: 'cpu', seq: i + 1, stats })).status);
    }
    expect(statuses).toEqual(Array(20).fill(400));
    let t = performance.now();
    expect((await api(srv).get(path)).status).toBe(200);
    const getMs = performance.now() - t;
    t = performance.now();
    expect((await api(srv).post(`/api/v1/flags/${FLAG}/environments/production/kill`, { reason: 'test' })).status).toBe(200);
    const killMs = performance.now() - t;
    // Today: GET 1.8–3.3 s, kill 1.96 s. Generous bounds for a shared machine.
    console.log(`after the far-future flood: canary GET ${getMs.toFixed(1)} ms, kill ${killMs.toFixed(1)} ms`);
    expect(getMs).toBeLessThan(1000);
    expect(killMs).toBeLessThan(1000);
    const stored = sqliteOf(srv.app)
      .prepare('SELECT count(*) AS n FROM metrics_minute WHERE minute > ?')
      .get(Date.now() + 3_600_000) as { n: number };
    expect(stored.n).toBe(0);
  });
});
