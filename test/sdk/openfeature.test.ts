import { afterEach, describe, expect, it } from 'vitest';
import { OpenFeature, ProviderEvents, type EventDetails } from '@openfeature/server-sdk';
import { AviaryProvider } from '@aviary/sdk/openfeature';
import { createClient } from '@aviary/sdk';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { checkoutAndBanner, kill, setState, until } from '../stream/fixtures.js';

let srv: TestServer | undefined;
afterEach(async () => {
  await OpenFeature.close();
  await srv?.close();
  srv = undefined;
});

async function flags(s: TestServer): Promise<void> {
  await checkoutAndBanner(s);
  expect((await api(s).post('/api/v1/flags', { key: 'limits', kind: 'json', variants: [{ key: 'small', value: { max: 3 } }] })).status).toBe(201);
  await setState(s, 'limits', 'production', { enabled: true, offVariant: 'small', targets: [], rules: [], fallthrough: { variant: 'small' } });
  expect((await api(s).post('/api/v1/flags', { key: 'ratio', kind: 'number', variants: [{ key: 'x', value: 0.25 }] })).status).toBe(201);
  await setState(s, 'ratio', 'production', { enabled: false, offVariant: 'x', targets: [], rules: [], fallthrough: { variant: 'x' } });
}

describe('AviaryProvider through @openfeature/server-sdk', () => {
  it('resolves every type with OpenFeature reasons, variants and error codes; targetingKey is the context key', async () => {
    srv = await startServer();
    await flags(srv);
    await OpenFeature.setProviderAndWait(new AviaryProvider({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 }));
    const of = OpenFeature.getClient();

    expect(await of.getBooleanDetails('new-checkout', false, { targetingKey: 'vip' })).toMatchObject({
      value: true,
      variant: 'on',
      reason: 'TARGETING_MATCH',
    });
    expect(await of.getBooleanDetails('new-checkout', false, { targetingKey: 'x', country: 'NL' })).toMatchObject({
      value: true,
      reason: 'TARGETING_MATCH',
      flagMetadata: { aviaryReason: 'RULE_MATCH', ruleId: 'nl', ruleIndex: 0 },
    });
    const split = await of.getBooleanDetails('new-checkout', false, { targetingKey: 'someone' });
    expect(split.reason).toBe('SPLIT');
    expect(split.flagMetadata.bucket).toEqual(expect.any(Number));
    expect(await of.getStringDetails('banner', 'd', { targetingKey: 'u' })).toMatchObject({ value: 'hello', variant: 'a', reason: 'DEFAULT' });
    expect(await of.getObjectDetails('limits', {}, { targetingKey: 'u' })).toMatchObject({ value: { max: 3 }, reason: 'DEFAULT' });
    expect(await of.getNumberDetails('ratio', 1, { targetingKey: 'u' })).toMatchObject({ value: 0.25, reason: 'DISABLED' });

    expect(await of.getBooleanDetails('missing', true, { targetingKey: 'u' })).toMatchObject({
      value: true,
      reason: 'ERROR',
      errorCode: 'FLAG_NOT_FOUND',
    });
    expect(await of.getNumberDetails('banner', 5, { targetingKey: 'u' })).toMatchObject({ value: 5, reason: 'ERROR', errorCode: 'TYPE_MISMATCH' });
    // A context without targetingKey is bucketed by nothing: the off variant, said so.
    expect(await of.getBooleanDetails('new-checkout', true, {})).toMatchObject({ value: false, flagMetadata: { bucketByMissing: true } });
  });

  it('emits CONFIGURATION_CHANGED with the changed flags, and STALE when the stream drops', async () => {
    srv = await startServer();
    await flags(srv);
    const provider = new AviaryProvider({
      baseUrl: srv.url,
      sdkKey: srv.sdkKeys.production,
      flushIntervalMs: 0,
      backoff: { initialMs: 50, maxMs: 100 },
    });
    await OpenFeature.setProviderAndWait(provider);
    const changes: EventDetails[] = [];
    const stale: EventDetails[] = [];
    const ready: EventDetails[] = [];
    OpenFeature.addHandler(ProviderEvents.ConfigurationChanged, (d) => changes.push(d!));
    OpenFeature.addHandler(ProviderEvents.Stale, (d) => stale.push(d!));
    OpenFeature.addHandler(ProviderEvents.Ready, (d) => ready.push(d!));
    const readyBefore = ready.length;

    await kill(srv, 'new-checkout');
    await until(() => changes.length === 1, 'CONFIGURATION_CHANGED');
    expect(changes[0]!.flagsChanged).toEqual(['new-checkout']);
    expect(await OpenFeature.getClient().getBooleanValue('new-checkout', true, { targetingKey: 'vip' })).toBe(false);

    for (const ws of srv.app.websocketServer.clients) ws.terminate();
    await until(() => stale.length === 1, 'STALE');
    // Reconnected and current again: READY.
    await until(() => ready.length > readyBefore, 'READY after recovery');
  });

  it('wraps an existing client and leaves it open on close; a bad key makes initialization fail', async () => {
    srv = await startServer();
    await flags(srv);
    const client = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
    await OpenFeature.setProviderAndWait(new AviaryProvider(client));
    expect(await OpenFeature.getClient().getStringValue('banner', 'd')).toBe('hello');
    await OpenFeature.close();
    expect(client.status().connected).toBe(true);
    await client.close();

    await expect(
      OpenFeature.setProviderAndWait(new AviaryProvider({ baseUrl: srv.url, sdkKey: 'avi_sdk_wrong', flushIntervalMs: 0 })),
    ).rejects.toThrow();
  });
});
