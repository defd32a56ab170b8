/** The SDK's counts and outcomes, sent to the real server, come back from `GET .../metrics` exactly. */
import { afterEach, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { booleanFlag, setState } from '../stream/fixtures.js';

let srv: TestServer | undefined;
const clients: AviaryClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await srv?.close();
  srv = undefined;
});

it('metrics totals equal what the SDKs evaluated and tracked, per variant', async () => {
  srv = await startServer();
  await booleanFlag(srv, 'new-checkout');
  await setState(srv, 'new-checkout', 'production', {
    enabled: true,
    offVariant: 'off',
    targets: [],
    rules: [],
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'on', percent: 50 },
          { variant: 'off', percent: 50 },
        ],
      },
    },
  });
  const expected: Record<string, { evaluations: number; errors: number }> = { on: { evaluations: 0, errors: 0 }, off: { evaluations: 0, errors: 0 } };
  for (let k = 0; k < 2; k++) {
    const c = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
    clients.push(c);
    await c.ready();
    for (let i = 0; i < 300; i++) {
      const user = { key: `user-${k}-${i}` };
      const d = c.variationDetail('new-checkout', user, false);
      expected[d.variant!]!.evaluations++;
      if (i % 10 === 0) {
        c.track('new-checkout', user, { error: true, latencyMs: 20 + i });
        expected[d.variant!]!.errors++;
      }
    }
    expect(await c.flush()).toBe(true);
    expect(c.status().reports).toMatchObject({ sent: 1, pending: 0, droppedReports: 0 });
  }
  const res = await api(srv).get('/api/v1/flags/new-checkout/environments/production/metrics');
  expect(res.status).toBe(200);
  for (const v of ['on', 'off']) {
    expect(res.body.totals[v]).toMatchObject({ evaluations: expected[v]!.evaluations, errors: expected[v]!.errors });
    expect(res.body.totals[v].latencyMs.p50).toBeGreaterThan(10);
  }
});
