/**
 * OpenFeature tracking through `@openfeature/server-sdk` with `AviaryProvider` against the real server: `track()`
 * becomes Aviary outcomes (errors, latency, values) of the variant the flag serves, reported to the server and shown
 * by `GET /api/v1/flags/{key}/environments/{env}/metrics` (what the canary guard reads).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { OpenFeature, type TrackingEventDetails } from '@openfeature/server-sdk';
import { AviaryProvider, toOutcome } from '@aviary/sdk/openfeature';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { checkoutAndBanner } from '../stream/fixtures.js';

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
});
