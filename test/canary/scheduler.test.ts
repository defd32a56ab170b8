/**
 * The canary runtime driven by an injected clock: no sleeping, every guard run explicit. Outcomes are real
 * MetricsReports posted over HTTP to the real server, stamped with the same clock's minutes.
 */
import type { MetricsReport } from '@aviary/sdk/protocol';
import { latencyBucket } from '@aviary/sdk/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { api, request, startServer, type TestServer } from '../helpers/server.js';

const T0 = Date.UTC(2026, 2, 1, 9, 0, 0);
let clock = T0;
let srv: TestServer;
let seq = 0;
const path = '/api/v1/flags/pay/environments/production/canary';

beforeEach(async () => {
  clock = T0;
  // The timer is effectively off: the test runs the guard itself.
  srv = await startServer({ now: () => clock, canary: { tickMs: 1e9 } });
  expect((await api(srv).post('/api/v1/flags', { key: 'pay', kind: 'boolean' })).status).toBe(201);
});
afterEach(async () => {
  await srv.close();
});

/** Posts outcomes for both variants in the current minute: `n` each, with the given error counts and latency. */
async function outcomes(n: number, errors: { on: number; off: number }, latencyMs = { on: 20, off: 20 }) {
  const minute = Math.floor(clock / 60_000) * 60_000;
  const stats = (['on', 'off'] as const).map((variant) => ({
    flag: 'pay',
    variant,
    minute,
    evaluations: n,
    outcomes: n,
    errors: errors[variant],
    latency: { [String(latencyBucket(latencyMs[variant]))]: n },
  }));
  const body: MetricsReport = { sdkId: 'sched', seq: ++seq, stats };
  const res = await request(srv, 'POST', '/sdk/v1/metrics', { body, token: srv.sdkKeys.production });
  expect(res.status).toBe(200);
}

describe('canary scheduler with an injected clock', () => {
  it('holds each stage for stageDurationSeconds of the injected clock, then advances on a healthy verdict', async () => {
    await api(srv).put(path, {
      control: 'off',
      canary: 'on',
      stages: [{ percent: 10 }, { percent: 60 }],
      stageDurationSeconds: 600,
      guard: { minSamples: 100 },
    });
    await outcomes(1000, { on: 10, off: 10 });
    clock += 599_000;
    await srv.app.canaries.tick();
    expect((await api(srv).get(path)).body).toMatchObject({ stage: 0, holdRemainingSeconds: 1 });
    clock += 1_000;
    await srv.app.canaries.tick();
    const s = (await api(srv).get(path)).body;
    expect(s).toMatchObject({ state: 'running', stage: 1, percent: 60, holdRemainingSeconds: 600 });
    expect(s.stageStartedAt).toBe(new Date(clock).toISOString());
  });

  it('does not advance without minSamples, however long the hold', async () => {
    await api(srv).put(path, {
      control: 'off',
      canary: 'on',
      stages: [{ percent: 10 }, { percent: 60 }],
      stageDurationSeconds: 60,
      guard: { minSamples: 5000 },
    });
    await outcomes(1000, { on: 0, off: 0 });
    clock += 86_400_000;
    await srv.app.canaries.tick();
    const s = (await api(srv).get(path)).body;
    expect(s.stage).toBe(0);
    expect(s.comparison.decision).toBe('insufficient');
    expect(s.lastDecision.why).toMatch(/waiting for 5000 outcomes/);
  });

  it('rolls back on a latency regression as soon as the batch lands, without waiting for the hold', async () => {
    await api(srv).put(path, {
      control: 'off',
      canary: 'on',
      stages: [{ percent: 50 }],
      stageDurationSeconds: 3600,
      guard: { minSamples: 200, maxLatencyIncreasePercent: 20 },
    });
    await outcomes(300, { on: 0, off: 0 }, { on: 80, off: 40 });
    // The guard runs right after the ingest batch commits (setImmediate), not on the timer.
    const deadline = Date.now() + 2000;
    let s = (await api(srv).get(path)).body;
    while (s.state === 'running' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      s = (await api(srv).get(path)).body;
    }
    expect(s.state).toBe('rolled_back');
    expect(s.lastDecision.why).toMatch(/latency \+\d+/);
    const audit = (await api(srv).get('/api/v1/audit?resourceType=canary&action=canary.rollback')).body.entries[0];
    expect(audit.after.evidence.latency.breach).toBe(true);
    expect(audit.after.evidence.canary.latencyMs.p95).toBeGreaterThan(audit.after.evidence.control.latencyMs.p95);
  });

  it('resumes after a restart from stored timestamps, paused time excluded', async () => {
    await api(srv).put(path, {
      control: 'off',
      canary: 'on',
      stages: [{ percent: 10 }, { percent: 60 }],
      stageDurationSeconds: 600,
      guard: { minSamples: 100 },
    });
    clock += 100_000;
    await api(srv).post(`${path}/pause`);
    clock += 10_000_000; // paused for a long time, across a restart
    srv = await srv.restart();
    await api(srv).post(`${path}/resume`);
    const resumed = (await api(srv).get(path)).body;
    expect(resumed).toMatchObject({ state: 'running', stage: 0, heldSeconds: 100, holdRemainingSeconds: 500 });
    await outcomes(1000, { on: 5, off: 5 });
    clock += 499_000;
    await srv.app.canaries.tick();
    expect((await api(srv).get(path)).body.stage).toBe(0);
    clock += 1_000;
    await srv.app.canaries.tick();
    expect((await api(srv).get(path)).body.stage).toBe(1);
  });
});
