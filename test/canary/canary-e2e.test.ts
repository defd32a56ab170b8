/**
 * End to end: the real server on 127.0.0.1, real SDK clients evaluating locally and reporting outcomes with
 * track(), the guard deciding from what they report.
 */
import { createClient, type AviaryClient } from '@aviary/sdk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { seededRandom } from '../../server/canary/simulation.js';
import { api, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
const clients: AviaryClient[] = [];

async function client(): Promise<AviaryClient> {
  const c = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
  clients.push(c);
  await c.ready();
  return c;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const canaryPath = '/api/v1/flags/checkout/environments/production/canary';
const getCanary = async () => (await api(srv).get(canaryPath)).body;

beforeEach(async () => {
  srv = await startServer({ canary: { tickMs: 50 }, metrics: { maxDelayMs: 2 } });
  const a = api(srv);
  expect((await a.post('/api/v1/flags', { key: 'checkout', kind: 'boolean' })).status).toBe(201);
  expect((await a.post('/api/v1/segments', { key: 'internal', included: ['staff-1', 'staff-2', 'staff-3'], excluded: [], rules: [] })).status).toBe(
    201,
  );
  // Start from "everyone gets off", enabled.
  const put = await a.put('/api/v1/flags/checkout/environments/production', {
    enabled: true,
    offVariant: 'off',
    targets: [],
    rules: [],
    fallthrough: { variant: 'off' },
  });
  expect(put.status).toBe(200);
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await srv.close();
});

/** Users evaluate the flag and report outcomes; errors and latency depend on the variant they were served. */
function traffic(
  c: AviaryClient,
  users: string[],
  rng: () => number,
  model: { on: { error: number; ms: number }; off: { error: number; ms: number } },
): void {
  for (const key of users) {
    const ctx = { key };
    const on = c.variation('checkout', ctx, false);
    const m = on ? model.on : model.off;
    c.track('checkout', ctx, { error: rng() < m.error, latencyMs: m.ms * Math.exp(0.3 * (rng() + rng() + rng() - 1.5)) });
  }
}

const users = (n: number, prefix = 'user') => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe('canary end to end', () => {
  it('a cohort stage serves only the cohort', async () => {
    const c = await client();
    const res = await api(srv).put(canaryPath, {
      control: 'off',
      canary: 'on',
      stages: [{ segment: 'internal' }, { percent: 10 }],
      stageDurationSeconds: 3600,
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ state: 'running', stage: 0, percent: 0, cohorts: ['internal'] });
    await until('the SDK to apply the cohort rule', () => c.variation('checkout', { key: 'staff-1' }, false));
    expect(['staff-1', 'staff-2', 'staff-3'].map((key) => c.variation('checkout', { key }, false))).toEqual([true, true, true]);
    expect(users(500).filter((key) => c.variation('checkout', { key }, false))).toEqual([]);
    const detail = c.variationDetail('checkout', { key: 'staff-2' }, false);
    expect(detail.reason).toMatchObject({ kind: 'RULE_MATCH', ruleId: 'canary-cohort-internal' });
  });

  it('rolls back a 5%-vs-1% error canary by itself and the SDKs switch to control', async () => {
    const [a, b] = [await client(), await client()];
    const res = await api(srv).put(canaryPath, {
      control: 'off',
      canary: 'on',
      stages: [{ percent: 50 }, { percent: 100 }],
      stageDurationSeconds: 3600,
    });
    expect(res.status).toBe(201);
    await until(
      'the 50% rollout',
      () => users(200).some((key) => a.variation('checkout', { key }, false)) && users(200).some((key) => b.variation('checkout', { key }, false)),
    );
    const rng = seededRandom(7);
    const model = { on: { error: 0.05, ms: 20 }, off: { error: 0.01, ms: 20 } };
    let switched = false;
    a.on('change', () => (switched = true));
    for (let round = 0; round < 20 && (await getCanary()).state === 'running'; round++) {
      traffic(a, users(500, `a${round}`), rng, model);
      traffic(b, users(500, `b${round}`), rng, model);
      await Promise.all([a.flush(), b.flush()]);
      await new Promise((r) => setTimeout(r, 30));
    }
    const flushedAt = Date.now();
    const rolledBack = await until(
      'the automatic rollback',
      async () => {
        const s = await getCanary();
        return s.state === 'rolled_back' ? s : undefined;
      },
      5_000,
    );
    expect(Date.now() - flushedAt).toBeLessThan(5_000);
    expect(rolledBack.lastDecision.decision).toBe('regression');
    expect(rolledBack.lastDecision.why).toMatch(/error rate/);
    await until(
      'the SDKs to serve control',
      () => switched && users(300).every((key) => !a.variation('checkout', { key }, true) && !b.variation('checkout', { key }, true)),
    );
    const state = (await api(srv).get('/api/v1/flags/checkout/environments/production')).body;
    expect(state.fallthrough).toEqual({ variant: 'off' });
    const audit = (await api(srv).get('/api/v1/audit?resourceType=canary&action=canary.rollback')).body.entries;
    expect(audit).toHaveLength(1);
    expect(audit[0].actor.name).toBe('canary-guard');
    expect(audit[0].reason).toMatch(/automatic rollback at stage 0 \(50%\): error rate/);
    expect(audit[0].after.evidence.canary.errorRate).toBeGreaterThan(0.03);
    expect(audit[0].after.evidence.errorRate.interval[0]).toBeGreaterThan(0.01);
  });

  it('a healthy canary advances through every stage to completion', async () => {
    const c = await client();
    const res = await api(srv).put(canaryPath, {
      control: 'off',
      canary: 'on',
      stages: [{ segment: 'internal' }, { percent: 20 }, { percent: 50 }, { percent: 100 }],
      stageDurationSeconds: 0.3,
      guard: { minSamples: 60, maxErrorRateIncrease: 0.02 },
    });
    expect(res.status).toBe(201);
    const rng = seededRandom(11);
    const model = { on: { error: 0.01, ms: 30 }, off: { error: 0.01, ms: 30 } };
    const seen = new Set<number>();
    for (let round = 0; round < 200; round++) {
      const s = await getCanary();
      seen.add(s.stage);
      if (s.state !== 'running') break;
      // The cohort is small: its members come back often, as staff do.
      for (let k = 0; k < 30; k++) traffic(c, ['staff-1', 'staff-2', 'staff-3'], rng, model);
      traffic(c, users(300, `r${round}`), rng, model);
      await c.flush();
      await new Promise((r) => setTimeout(r, 40));
    }
    const done = await getCanary();
    expect(done.state).toBe('completed');
    expect([...seen].sort()).toEqual([0, 1, 2, 3]);
    await until('everyone to get the canary', () => users(300).every((key) => c.variation('checkout', { key }, false)));
    const actions = (await api(srv).get('/api/v1/audit?resourceType=canary')).body.entries.map((e: { action: string }) => e.action).reverse();
    expect(actions).toEqual(['canary.start', 'canary.advance', 'canary.advance', 'canary.advance', 'canary.complete']);
    const advance = (await api(srv).get('/api/v1/audit?resourceType=canary&action=canary.advance')).body.entries[0];
    expect(advance.reason).toMatch(/^automatic advance to stage 3 \(100%\) after holding stage 2 \(50%\) .*no significant regression/);
  });
});

describe('canary lifecycle', () => {
  it('manual controls move the canary and the flag state', async () => {
    const a = api(srv);
    await a.put(canaryPath, { control: 'off', canary: 'on', stages: [{ percent: 5 }, { percent: 25 }], stageDurationSeconds: 3600 });
    expect((await a.post(`${canaryPath}/pause`, { reason: 'lunch' })).body.state).toBe('paused');
    expect((await a.post(`${canaryPath}/pause`)).status).toBe(409);
    const advanced = await a.post(`${canaryPath}/advance`);
    expect(advanced.body).toMatchObject({ state: 'paused', stage: 1, percent: 25 });
    expect((await a.post(`${canaryPath}/resume`)).body.state).toBe('running');
    let state = (await a.get('/api/v1/flags/checkout/environments/production')).body;
    expect(state.fallthrough.rollout.weights).toEqual([
      { variant: 'on', percent: 25 },
      { variant: 'off', percent: 75 },
    ]);
    expect((await a.post(`${canaryPath}/rollback`, { reason: 'not today' })).body.state).toBe('rolled_back');
    state = (await a.get('/api/v1/flags/checkout/environments/production')).body;
    expect(state.fallthrough).toEqual({ variant: 'off' });
    const conflict = await a.post(`${canaryPath}/resume`);
    expect(conflict.status).toBe(409);
    expect(conflict.headers.get('content-type')).toContain('application/problem+json');
    expect((await a.post(`${canaryPath}/promote`)).body).toMatchObject({ state: 'promoted', percent: 100 });
    state = (await a.get('/api/v1/flags/checkout/environments/production')).body;
    expect(state.fallthrough).toEqual({ variant: 'on' });
    const reasons = (await a.get('/api/v1/audit?resourceType=canary')).body.entries.map((e: { reason: string }) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['paused by hand: lunch', 'rolled back by hand: not today']));
    expect((await a.delete(canaryPath)).status).toBe(204);
    expect((await a.get(canaryPath)).status).toBe(404);
  });

  it('rejects a bad canary document with field paths and changes nothing', async () => {
    const a = api(srv);
    const res = await a.put(canaryPath, { control: 'off', canary: 'purple', stages: [{ percent: 50 }, { percent: 10 }, { segment: 'ghosts' }] });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body.errors.map((e: { path: string }) => e.path)).toEqual(
      expect.arrayContaining(['/canary', '/stages/1/percent', '/stages/2/segment']),
    );
    expect((await a.get(canaryPath)).status).toBe(404);
    const schema = await a.put(canaryPath, { control: 'off', canary: 'on', stages: [{ percent: 'lots' }] });
    expect(schema.status).toBe(400);
    expect((await a.get('/api/v1/flags/checkout/environments/production')).body.fallthrough).toEqual({ variant: 'off' });
  });

  it('refuses a second canary while one is active', async () => {
    const a = api(srv);
    await a.put(canaryPath, { control: 'off', canary: 'on', stages: [{ percent: 5 }] });
    expect((await a.put(canaryPath, { control: 'off', canary: 'on', stages: [{ percent: 5 }] })).status).toBe(409);
  });

  it('pauses itself when someone edits the flag state it controls, keeping their edit', async () => {
    const a = api(srv);
    await a.put(canaryPath, { control: 'off', canary: 'on', stages: [{ percent: 5 }, { percent: 50 }], stageDurationSeconds: 3600 });
    const edited = await a.put('/api/v1/flags/checkout/environments/production', {
      enabled: true,
      offVariant: 'off',
      targets: [],
      rules: [],
      fallthrough: { variant: 'on' },
    });
    expect(edited.status).toBe(200);
    const paused = await until('the canary to pause', async () => {
      const s = await getCanary();
      return s.state === 'paused' ? s : undefined;
    });
    expect(paused.stage).toBe(0);
    expect((await a.get('/api/v1/flags/checkout/environments/production')).body.fallthrough).toEqual({ variant: 'on' });
    const entry = (await a.get('/api/v1/audit?resourceType=canary&action=canary.pause')).body.entries[0];
    expect(entry.reason).toMatch(/changed by hand/);
    // Resuming re-applies the stage.
    await a.post(`${canaryPath}/resume`);
    expect((await a.get('/api/v1/flags/checkout/environments/production')).body.fallthrough.rollout.weights[0]).toEqual({
      variant: 'on',
      percent: 5,
    });
  });

  it('a canary in progress resumes after a restart, its clocks from stored timestamps', async () => {
    const a = api(srv);
    await a.put(canaryPath, {
      control: 'off',
      canary: 'on',
      stages: [{ percent: 5 }, { percent: 50 }, { percent: 100 }],
      stageDurationSeconds: 0.5,
      guard: { minSamples: 30 },
    });
    await a.post(`${canaryPath}/advance`);
    const before = await getCanary();
    expect(before.stage).toBe(1);
    srv = await srv.restart();
    const after = await getCanary();
    expect(after).toMatchObject({ state: 'running', stage: 1, stageStartedAt: before.stageStartedAt, startedAt: before.startedAt });
    // The restarted server keeps guarding: healthy outcomes arrive and it advances on its own.
    const c = await client();
    const rng = seededRandom(3);
    const model = { on: { error: 0, ms: 10 }, off: { error: 0, ms: 10 } };
    await until(
      'the canary to advance after the restart',
      async () => {
        traffic(c, users(200, `x${Math.floor(rng() * 1e9)}`), rng, model);
        await c.flush();
        const s = await getCanary();
        return s.stage >= 2 || s.state === 'completed' ? s : undefined;
      },
      10_000,
    );
  });

  it('GET shows the live comparison', async () => {
    const c = await client();
    await api(srv).put(canaryPath, {
      control: 'off',
      canary: 'on',
      stages: [{ percent: 50 }],
      stageDurationSeconds: 3600,
      guard: { minSamples: 100 },
    });
    await until('the rollout', () => users(100).some((key) => c.variation('checkout', { key }, false)));
    traffic(c, users(400, 'live'), seededRandom(5), { on: { error: 0.02, ms: 10 }, off: { error: 0.02, ms: 10 } });
    await c.flush();
    const s = await until('outcomes to show', async () => {
      const s = await getCanary();
      return s.comparison.canary.outcomes > 0 ? s : undefined;
    });
    expect(s.comparison.canary.outcomes + s.comparison.control.outcomes).toBe(400);
    expect(s.comparison.canary.latencyMs.p95).toBeGreaterThan(0);
    expect(s.comparison.errorRate.interval).toHaveLength(2);
    expect(['healthy', 'insufficient']).toContain(s.comparison.decision);
    expect(s.comparison.why.length).toBeGreaterThan(10);
  });
});
