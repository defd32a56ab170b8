import { createClient, type AviaryClient } from '@aviary/sdk';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
const clients: AviaryClient[] = [];

beforeEach(async () => {
  srv = await startServer();
  const a = api(srv);
  expect((await a.post('/api/v1/flags', { key: 'search', kind: 'boolean' })).status).toBe(201);
  const put = await a.put('/api/v1/flags/search/environments/production', {
    enabled: true,
    offVariant: 'off',
    targets: [],
    rules: [],
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'on', percent: 30 },
          { variant: 'off', percent: 70 },
        ],
      },
    },
  });
  expect(put.status).toBe(200);
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await srv.close();
});

it('metrics totals equal what the SDKs evaluated and tracked', async () => {
  const expected: Record<string, { evaluations: number; outcomes: number; errors: number }> = {};
  const bump = (variant: string, field: 'evaluations' | 'outcomes' | 'errors') => {
    expected[variant] ??= { evaluations: 0, outcomes: 0, errors: 0 };
    expected[variant][field]++;
  };
  for (let s = 0; s < 3; s++) {
    const c = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
    clients.push(c);
    await c.ready();
    for (let i = 0; i < 700; i++) {
      const ctx = { key: `u-${s}-${i}` };
      const detail = c.variationDetail('search', ctx, false);
      bump(detail.variant!, 'evaluations');
      if (i % 3 === 0) {
        const error = i % 9 === 0;
        c.track('search', ctx, { error, latencyMs: 5 + (i % 50) });
        bump(detail.variant!, 'outcomes');
        if (error) bump(detail.variant!, 'errors');
      }
    }
    // An unknown flag: the caller's default, reported under "(default)".
    for (let i = 0; i < 5; i++) c.variation('no-such-flag', { key: 'x' }, 1);
    await c.flush();
  }
  const m = await api(srv).get('/api/v1/flags/search/environments/production/metrics');
  expect(m.status).toBe(200);
  for (const [variant, want] of Object.entries(expected)) expect(m.body.totals[variant]).toMatchObject(want);
  expect(Object.keys(m.body.totals).sort()).toEqual(['off', 'on']);
  expect(m.body.totals.on.evaluations + m.body.totals.off.evaluations).toBe(2100);
  expect(m.body.totals.on.latencyMs.p50).toBeGreaterThan(5);
  expect(m.body.totals.on.latencyMs.p99).toBeLessThan(60);
});
