/**
 * Flag lifecycle (CONTRACT §15) from real SDK reports: a real server and real SDK clients share an injected clock,
 * evaluate flags on day 0 and day 8, and the API, the `status` filter and the Prometheus gauge say which flags are
 * new, active, launched and inactive.
 */
import { createClient, type AviaryClient } from '@aviary/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';

const DAY = 86_400_000;
const T0 = Date.parse('2026-03-02T10:00:00.000Z');
let t = T0;
const now = () => t;
let srv: TestServer;
let client: AviaryClient;

const state = (fallthrough: unknown) => ({ enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough });
const half = {
  rollout: {
    weights: [
      { variant: 'on', percent: 50 },
      { variant: 'off', percent: 50 },
    ],
  },
};

async function evaluate(keys: string[], contexts = 40): Promise<void> {
  for (const k of keys) for (let i = 0; i < contexts; i++) client.variation(k, { key: `user-${i}` }, false);
  expect(await client.flush()).toBe(true);
}

beforeAll(async () => {
  srv = await startServer({ now });
  const a = api(srv);
  for (const key of ['fresh', 'busy', 'done', 'late', 'stale', 'mixed']) {
    expect((await a.post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
  }
  for (const key of ['done', 'late', 'stale', 'mixed'])
    expect((await a.put(`/api/v1/flags/${key}/environments/production`, state({ variant: 'on' }))).status).toBe(200);
  expect((await a.put('/api/v1/flags/busy/environments/production', state(half))).status).toBe(200);
  client = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0, now });
  await client.ready();
});

afterAll(async () => {
  await client?.close();
  await srv?.close();
});

const lifecycleIn = async (flag: string, env = 'production') => {
  const r = await api(srv).get(`/api/v1/flags/${flag}`);
  expect(r.status).toBe(200);
  return r.body.environments[env].lifecycle;
};

const keysWith = async (status: string) => {
  const r = await api(srv).get(`/api/v1/flags?environment=production&status=${status}`);
  expect(r.status).toBe(200);
  return (r.body.flags as Array<{ key: string }>).map((f) => f.key).sort();
};

describe('lifecycle from SDK reports', () => {
  it('day 0: unevaluated flags are new, evaluated ones active (too young to be launched)', async () => {
    await evaluate(['busy', 'done', 'stale', 'mixed']);
    expect(await keysWith('new')).toEqual(['fresh', 'late']);
    expect(await keysWith('active')).toEqual(['busy', 'done', 'mixed', 'stale']);
    expect(await keysWith('launched')).toEqual([]);
    const done = await lifecycleIn('done');
    expect(done.status).toBe('active');
    // The evaluations' minute (the report's time, bounded by the server clock).
    expect(Date.parse(done.lastEvaluatedAt)).toBeLessThanOrEqual(T0);
    expect(Date.parse(done.lastEvaluatedAt)).toBeGreaterThan(T0 - 60_000);
    expect(done.firstEvaluatedAt).not.toBeNull();
  });

  it('day 8: launched, active, inactive, and the caller default blocks launched', async () => {
    t = T0 + 8 * DAY;
    // `late` is evaluated for the first time; `mixed` also serves the caller's default (wrong type) to some callers.
    await evaluate(['busy', 'done', 'late', 'mixed']);
    for (let i = 0; i < 5; i++) client.variation('mixed', { key: `odd-${i}` }, 'not a boolean');
    expect(await client.flush()).toBe(true);

    expect(await keysWith('launched')).toEqual(['done']);
    expect(await keysWith('active')).toEqual(['busy', 'late', 'mixed']);
    expect(await keysWith('inactive')).toEqual(['fresh', 'stale']);
    expect(await keysWith('new')).toEqual([]);

    const done = await lifecycleIn('done');
    expect(done).toMatchObject({ status: 'launched', variant: 'on' });
    expect(Date.parse(done.since)).toBe(Date.parse(done.firstEvaluatedAt));
    expect(Date.parse(done.since)).toBeLessThanOrEqual(T0);
    expect(Date.parse(done.lastEvaluatedAt)).toBeGreaterThan(T0 + 8 * DAY - 60_000);
    const stale = await lifecycleIn('stale');
    expect(stale.status).toBe('inactive');
    expect(Date.parse(stale.lastEvaluatedAt)).toBeLessThanOrEqual(T0);
    // Never evaluated and 8 days old.
    expect(await lifecycleIn('fresh')).toMatchObject({ status: 'inactive', lastEvaluatedAt: null });
    // Evaluated in production only: staging says so.
    expect((await lifecycleIn('done', 'staging')).status).toBe('inactive');

    // The state's own answer carries it too.
    const st = await api(srv).get('/api/v1/flags/done/environments/production');
    expect(st.status).toBe(200);
    expect(st.body.lifecycle).toEqual(done);
  });

  it('the gauge counts flags per environment and status', async () => {
    const r = await fetch(`${srv.url}/metrics`);
    const text = await r.text();
    const value = (env: string, status: string) => {
      const m = new RegExp(`^aviary_flag_lifecycle\\{environment="${env}",status="${status}"\\} (\\d+)$`, 'm').exec(text);
      return m ? Number(m[1]) : null;
    };
    expect(value('production', 'launched')).toBe(1);
    expect(value('production', 'active')).toBe(3);
    expect(value('production', 'inactive')).toBe(2);
    expect(value('production', 'new')).toBe(0);
    expect(value('staging', 'inactive')).toBe(6);
  });

  it('a status falls to inactive once 7 days pass without evaluations, launched included', async () => {
    t = T0 + 16 * DAY;
    expect(await keysWith('inactive')).toEqual(['busy', 'done', 'fresh', 'late', 'mixed', 'stale']);
    expect(Date.parse((await lifecycleIn('done')).lastEvaluatedAt)).toBeGreaterThan(T0 + 8 * DAY - 60_000);
  });

  it('refuses a status without an environment, and an unknown status, naming the field', async () => {
    const a = api(srv);
    const noEnv = await a.get('/api/v1/flags?status=launched');
    expect(noEnv.status).toBe(400);
    expect(noEnv.headers.get('content-type')).toContain('application/problem+json');
    expect(JSON.stringify(noEnv.body)).toContain('/query/environment');
    const bad = await a.get('/api/v1/flags?environment=production&status=stale');
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('status');
  });
});
