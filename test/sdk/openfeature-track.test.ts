/**
 * OpenFeature tracking through `@openfeature/server-sdk` with `AviaryProvider` against the real server: `track()`
 * becomes Aviary outcomes (errors, latency, values) of the variant the flag serves, reported to the server and shown
 * by `GET /api/v1/flags/{key}/environments/{env}/metrics` (what the canary guard reads).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { OpenFeature, type TrackingEventDetails } from '@openfeature/server-sdk';
import { AviaryProvider, toOutcome } from '@aviary/sdk/openfeature';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { seededRandom } from '../../server/canary/simulation.js';
import { checkoutAndBanner, until } from '../stream/fixtures.js';

let srv: TestServer | undefined;
afterEach(async () => {
  await OpenFeature.close();
  await srv?.close();
  srv = undefined;
});

describe('AviaryProvider.track', () => {
  it('maps OpenFeature tracking events onto outcomes of the served variant, which reach the server', async () => {
    srv = await startServer();
    await checkoutAndBanner(srv);
    const provider = new AviaryProvider({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
    await OpenFeature.setProviderAndWait(provider);
    const flags = OpenFeature.getClient('checkout-service');
    const vip = { targetingKey: 'vip' }; // targeted: new-checkout serves `on`

    expect(await flags.getBooleanValue('new-checkout', false, vip)).toBe(true);
    // The event name is the flag key...
    flags.track('new-checkout', vip, { error: true, latencyMs: 120 });
    flags.track('new-checkout', vip, { value: 9.5, latencyMs: 30 });
    // ...or the flag is named in the details, and the event keeps a name of its own.
    flags.track('checkout-failed', vip, { flagKey: 'new-checkout', error: true });
    // Details of the wrong type are left out: an outcome that is neither an error nor timed nor valued.
    flags.track('new-checkout', vip, { error: 'yes', latencyMs: '5', value: Number.NaN });
    // An evaluation context set on the client is merged in by OpenFeature: `banner` serves `a` to anyone.
    flags.setContext({ targetingKey: 'u' });
    flags.track('banner', undefined, { error: false, latencyMs: 8 });
    // An event that names no flag Aviary knows is attributed to none.
    flags.track('page-view', vip, { value: 1 });

    expect(await provider.client.flush()).toBe(true);
    const checkout = (await api(srv).get('/api/v1/flags/new-checkout/environments/production/metrics')).body;
    expect(Object.keys(checkout.totals)).toEqual(['on']);
    expect(checkout.totals.on).toMatchObject({
      evaluations: 1, // tracking evaluates the flag again to find the variant, without counting it
      outcomes: 4,
      errors: 2,
      errorRate: 0.5,
      latencySamples: 2,
      value: { sum: 9.5, count: 1 },
    });
    const banner = (await api(srv).get('/api/v1/flags/banner/environments/production/metrics')).body;
    expect(banner.totals.a).toMatchObject({ evaluations: 0, outcomes: 1, errors: 0, latencySamples: 1 });
    expect((await api(srv).get('/api/v1/flags/page-view/environments/production/metrics')).status).toBe(404);
  });

  it('toOutcome keeps only well-typed error, latencyMs and value', () => {
    expect(toOutcome({ error: true, latencyMs: 12.5, value: 3, other: 'x' })).toEqual({ error: true, latencyMs: 12.5, value: 3 });
    // What plain JavaScript (or an untyped payload) may pass: a string value is not a number.
    expect(toOutcome({ error: 1, latencyMs: Number.POSITIVE_INFINITY, value: '3' } as unknown as TrackingEventDetails)).toEqual({});
    expect(toOutcome({})).toEqual({});
  });

  it('feeds the canary guard: a canary whose variant fails more, as told only through OpenFeature, is rolled back', async () => {
    srv = await startServer({ canary: { tickMs: 50 }, metrics: { maxDelayMs: 2 } });
    const a = api(srv);
    expect((await a.post('/api/v1/flags', { key: 'checkout', kind: 'boolean' })).status).toBe(201);
    const off = { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'off' } };
    expect((await a.put('/api/v1/flags/checkout/environments/production', off)).status).toBe(200);
    const canaryPath = '/api/v1/flags/checkout/environments/production/canary';
    const canary = { control: 'off', canary: 'on', stages: [{ percent: 50 }, { percent: 100 }], stageDurationSeconds: 3600 };
    expect((await a.put(canaryPath, canary)).status).toBe(201);

    // Two services, each with its own provider (OpenFeature domains), using nothing but the OpenFeature API.
    const providers = ['svc-a', 'svc-b'].map((domain) => {
      const p = new AviaryProvider({ baseUrl: srv!.url, sdkKey: srv!.sdkKeys.production, flushIntervalMs: 0 });
      return { domain, provider: p, flags: OpenFeature.getClient(domain) };
    });
    for (const { domain, provider } of providers) await OpenFeature.setProviderAndWait(domain, provider);
    const users = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    const rollingOut = () =>
      providers.every(({ provider }) => users(200, 'probe').some((key) => provider.client.variation('checkout', { key }, false)));
    await until(rollingOut, 'the 50% rollout');

    const rng = seededRandom(7);
    const errorRate = { on: 0.05, off: 0.01 };
    for (let round = 0; round < 20 && (await a.get(canaryPath)).body.state === 'running'; round++) {
      for (const { domain, flags } of providers) {
        for (const targetingKey of users(500, `${domain}-${round}`)) {
          const on = await flags.getBooleanValue('checkout', false, { targetingKey });
          flags.track('checkout', { targetingKey }, { error: rng() < (on ? errorRate.on : errorRate.off), latencyMs: 20 });
        }
      }
      await Promise.all(providers.map(({ provider }) => provider.client.flush()));
      await new Promise((r) => setTimeout(r, 30));
    }
    // The guard decides on its own tick: poll its state for at most 5 s.
    let state: { state: string; lastDecision?: { decision: string; why: string } } = (await a.get(canaryPath)).body;
    for (const deadline = Date.now() + 5_000; state.state !== 'rolled_back' && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 50));
      state = (await a.get(canaryPath)).body;
    }
    expect(state.state).toBe('rolled_back');
    expect(state.lastDecision).toMatchObject({ decision: 'regression', why: expect.stringMatching(/error rate/) });
  });
});
