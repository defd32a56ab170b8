/**
 * OFREP against the real server with the published providers, unchanged: `@openfeature/ofrep-provider` through
 * `@openfeature/server-sdk`, and `@openfeature/ofrep-web-provider` through `@openfeature/web-sdk` (Node's fetch).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { OpenFeature as ServerOpenFeature } from '@openfeature/server-sdk';
import { OpenFeature as WebOpenFeature } from '@openfeature/web-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
import { startServer, type TestServer } from '../helpers/server.js';
import { checkoutAndBanner, kill } from '../stream/fixtures.js';

let srv: TestServer | undefined;
afterEach(async () => {
  await ServerOpenFeature.close();
  await WebOpenFeature.close();
  await srv?.close();
  srv = undefined;
});

const post = (s: TestServer, path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(s.url + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${s.sdkKeys.production}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

describe('OFREP', () => {
  it('works with the published server provider, unchanged', async () => {
    srv = await startServer();
    await checkoutAndBanner(srv);
    await ServerOpenFeature.setProviderAndWait(
      new OFREPProvider({ baseUrl: srv.url, headers: [['Authorization', `Bearer ${srv.sdkKeys.production}`]] }),
    );
    const of = ServerOpenFeature.getClient();
    expect(await of.getBooleanDetails('new-checkout', false, { targetingKey: 'vip' })).toMatchObject({
      value: true,
      variant: 'on',
      reason: 'TARGETING_MATCH',
    });
    expect(await of.getBooleanDetails('new-checkout', false, { targetingKey: 'x', country: 'NL' })).toMatchObject({
      value: true,
      reason: 'TARGETING_MATCH',
    });
    expect((await of.getBooleanDetails('new-checkout', false, { targetingKey: 'someone' })).reason).toBe('SPLIT');
    expect(await of.getStringDetails('banner', 'd', { targetingKey: 'u' })).toMatchObject({ value: 'hello', reason: 'DEFAULT' });
    expect(await of.getBooleanDetails('missing', true, { targetingKey: 'u' })).toMatchObject({
      value: true,
      reason: 'ERROR',
      errorCode: 'FLAG_NOT_FOUND',
    });
    expect(await of.getNumberDetails('banner', 3, { targetingKey: 'u' })).toMatchObject({ value: 3, reason: 'ERROR', errorCode: 'TYPE_MISMATCH' });
    expect(await of.getBooleanDetails('new-checkout', false, { targetingKey: 'u', nested: { a: 1 } })).toMatchObject({
      value: false,
      errorCode: 'INVALID_CONTEXT',
    });
    await kill(srv, 'new-checkout');
    expect(await of.getBooleanDetails('new-checkout', true, { targetingKey: 'vip' })).toMatchObject({ value: false, reason: 'DISABLED' });
  });

  it('works with the published web provider, unchanged (bulk evaluation)', async () => {
    srv = await startServer();
    await checkoutAndBanner(srv);
    await WebOpenFeature.setContext({ targetingKey: 'vip' });
    await WebOpenFeature.setProviderAndWait(
      new OFREPWebProvider({
        baseUrl: srv.url,
        headers: [['Authorization', `Bearer ${srv.sdkKeys.production}`]],
        pollInterval: 0,
        cacheMode: 'disabled',
      } as never),
    );
    const of = WebOpenFeature.getClient();
    expect(of.getBooleanDetails('new-checkout', false)).toMatchObject({ value: true, variant: 'on', reason: 'TARGETING_MATCH' });
    expect(of.getStringValue('banner', 'd')).toBe('hello');
    await WebOpenFeature.setContext({ targetingKey: 'x', country: 'NL' });
    expect(of.getBooleanDetails('new-checkout', false)).toMatchObject({ value: true, reason: 'TARGETING_MATCH' });
  });

  it('bulk evaluation answers 304 for an unchanged ETag, and a new ETag after a change or for another context', async () => {
    srv = await startServer();
    await checkoutAndBanner(srv);
    const first = await post(srv, '/ofrep/v1/evaluate/flags', { context: { targetingKey: 'vip' } });
    expect(first.status).toBe(200);
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^".+"$/);
    const body = (await first.json()) as { flags: Array<{ key: string; value: unknown }> };
    expect(body.flags.map((f) => f.key).sort()).toEqual(['banner', 'new-checkout']);

    expect((await post(srv, '/ofrep/v1/evaluate/flags', { context: { targetingKey: 'vip' } }, { 'if-none-match': etag })).status).toBe(304);
    const other = await post(srv, '/ofrep/v1/evaluate/flags', { context: { targetingKey: 'someone-else' } }, { 'if-none-match': etag });
    expect(other.status).toBe(200);
    expect(other.headers.get('etag')).not.toBe(etag);
    await kill(srv, 'new-checkout');
    const after = await post(srv, '/ofrep/v1/evaluate/flags', { context: { targetingKey: 'vip' } }, { 'if-none-match': etag });
    expect(after.status).toBe(200);
    expect(
      ((await after.json()) as { flags: Array<{ key: string; value: unknown; reason: string }> }).flags.find((f) => f.key === 'new-checkout'),
    ).toMatchObject({ value: false, reason: 'DISABLED' });
  });

  it('requires an SDK key and reports bad contexts in OFREP form', async () => {
    srv = await startServer();
    await checkoutAndBanner(srv);
    const noKey = await fetch(srv.url + '/ofrep/v1/evaluate/flags/banner', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(noKey.status).toBe(401);
    const admin = await fetch(srv.url + '/ofrep/v1/evaluate/flags', {
      method: 'POST',
      headers: { authorization: `Bearer ${srv.adminToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(admin.status).toBe(403);
    const bad = await post(srv, '/ofrep/v1/evaluate/flags/banner', { context: { targetingKey: 7 } });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ key: 'banner', errorCode: 'INVALID_CONTEXT', errorDetails: '/context/targetingKey: must be a string' });
    const missing = await post(srv, '/ofrep/v1/evaluate/flags/nope', { context: {} });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ key: 'nope', errorCode: 'FLAG_NOT_FOUND' });
    const bulkBad = await post(srv, '/ofrep/v1/evaluate/flags', { context: [] });
    expect(bulkBad.status).toBe(400);
    expect(await bulkBad.json()).toMatchObject({ errorCode: 'INVALID_CONTEXT' });
  });
});
