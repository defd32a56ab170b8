/**
 * The relay in-process against a real server (issue 13): the server's own SDK routes served by the relay (snapshot,
 * evaluate, OFREP), metric reports validated at the relay, journalled and forwarded upstream (counted once per
 * `(key, sdkId, seq)`, client-side keys' reports counted as client-side), and `/readyz` 503 while it holds no snapshot.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { buildRelayApp } from '../../server/relay/relay-app.js';
import { writeScope } from '../../server/relay/disk-cache.js';
import { api, request, startServer, type TestServer } from '../helpers/server.js';
import { booleanFlag, until } from '../stream/fixtures.js';
import { freePort } from '../stream/server-process.js';

let srv: TestServer;
let relay: FastifyInstance | null = null;
let relayUrl: string;
let dir: string;
const clients: AviaryClient[] = [];

async function startRelay(upstream: string, token: string): Promise<void> {
  relay = await buildRelayApp({ upstream, token, cacheDir: join(dir, 'cache'), backoff: { initialMs: 100, maxMs: 500 }, metrics: { periodMs: 100 } });
  await relay.listen({ port: 0, host: '127.0.0.1' });
  const a = relay.server.address();
  relayUrl = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'aviary-relay-app-'));
  srv = await startServer();
  await booleanFlag(srv, 'checkout');
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await relay?.close();
  relay = null;
  await srv.close();
  rmSync(dir, { recursive: true, force: true });
});

async function relayToken(): Promise<string> {
  return (await api(srv).post('/api/v1/tokens', { kind: 'relay', name: 'edge', environments: ['production'] })).body.token;
}

describe('relay app', () => {
  it('serves snapshot, evaluate and OFREP with upstream’s SDK keys, and refuses unknown keys', async () => {
    await startRelay(srv.url, await relayToken());
    await until(() => relay!.relay!.state.version('production') === srv.app.snapshots.version('production'), 'the relay hydrated');
    const key = srv.sdkKeys.production;
    const snap = await request({ url: relayUrl, adminToken: '' }, 'GET', '/sdk/v1/flags', { token: key });
    expect(snap.status).toBe(200);
    expect(snap.body).toEqual(srv.app.snapshots.get('production'));
    const evald = await request({ url: relayUrl, adminToken: '' }, 'POST', '/sdk/v1/evaluate', { token: key, body: { context: { key: 'u' } } });
    expect(evald.body.flags.checkout).toMatchObject({ value: true, variant: 'on' });
    const ofrep = await request({ url: relayUrl, adminToken: '' }, 'POST', '/ofrep/v1/evaluate/flags/checkout', {
      token: key,
      body: { context: { targetingKey: 'u' } },
    });
    expect(ofrep.body).toMatchObject({ key: 'checkout', value: true });
    expect((await request({ url: relayUrl, adminToken: '' }, 'GET', '/sdk/v1/flags', { token: 'nope-not-a-key-at-all' })).status).toBe(401);
    // Staging is not in the relay's scope: its key is unknown here.
    expect((await request({ url: relayUrl, adminToken: '' }, 'GET', '/sdk/v1/flags', { token: srv.sdkKeys.staging })).status).toBe(401);
    // No admin API at a relay.
    expect((await request({ url: relayUrl, adminToken: '' }, 'GET', '/api/v1/flags', { token: key })).status).toBe(404);
  });

  it('forwards SDK metric reports upstream, counted once, client-side keys’ as client-side; refuses a bad report', async () => {
    await startRelay(srv.url, await relayToken());
    const counted = async () =>
      ((await api(srv).get('/api/v1/flags/checkout/environments/production/metrics')).body.totals.on?.evaluations as number) ?? 0;
    const countedIs = async (n: number) => {
      const deadline = Date.now() + 10_000;
      while ((await counted()) !== n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await counted()).toBe(n);
    };
    // Connected at once, before the relay heard its keys: told to retry (1013), not refused for good.
    const c = createClient({ baseUrl: relayUrl, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0, backoff: { initialMs: 100 } });
    clients.push(c);
    await c.ready();
    for (let i = 0; i < 50; i++) c.variation('checkout', { key: `u${i}` }, false);
    expect(await c.flush()).toBe(true);
    await countedIs(50);

    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    const report = { sdkId: 'retry-sdk', seq: 1, stats: [{ flag: 'checkout', variant: 'on', minute, evaluations: 7, outcomes: 0, errors: 0 }] };
    const at = { url: relayUrl, adminToken: '' };
    expect((await request(at, 'POST', '/sdk/v1/metrics', { token: srv.sdkKeys.production, body: report })).status).toBe(200);
    // A retry after a lost answer is journalled again, and counted once upstream.
    const again = await request(at, 'POST', '/sdk/v1/metrics', { token: srv.sdkKeys.production, body: report });
    expect(again.body).toMatchObject({ accepted: true });
    await countedIs(57);

    const bad = await request(at, 'POST', '/sdk/v1/metrics', {
      token: srv.sdkKeys.production,
      body: { ...report, seq: 2, stats: [{ ...report.stats[0], flag: 'nope' }] },
    });
    expect(bad.status).toBe(400);
    const created = (await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'web', clientSide: true })).body;
    await until(() => relay!.stores.tokens.authenticate(created.token) !== null, 'the relay learned the client-side key');
    const web = await request(at, 'POST', '/sdk/v1/metrics', { token: created.token, body: { ...report, sdkId: 'web-1' } });
    expect(web.status).toBe(200);
    await countedIs(64);
    // Attributed upstream to the client-side key itself (its evidence stays client-side), not to the relay.
    expect(await srv.app.store.all('SELECT token_id FROM sdk_reports WHERE sdk_id = ?', ['web-1'])).toEqual([{ token_id: created.id }]);
  });

  it('is not ready (503) while it holds no snapshot, and says why', async () => {
    await writeScope(join(dir, 'cache'), { name: 'edge', environments: ['production'] });
    await startRelay(`http://127.0.0.1:${await freePort()}`, 'avi_relay_not-reachable-anyway');
    const res = await fetch(`${relayUrl}/readyz`);
    expect(res.status).toBe(503);
    const body = await res.json();
    expect(body.detail).toMatch(/no snapshot yet for "production"/);
    expect(body.environments.production).toMatchObject({ snapshot: 'none', version: null });
    // It cannot tell an unknown key from one it has not heard of yet: 503 (retry), never a final 401.
    expect((await request({ url: relayUrl, adminToken: '' }, 'GET', '/sdk/v1/flags', { token: srv.sdkKeys.production })).status).toBe(503);
  });

  it('a key rotated upstream: the relay learns the new key, serves the old one through the overlap and closes its streams after', async () => {
    await startRelay(srv.url, await relayToken());
    const old = (await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'web' })).body;
    await until(() => relay!.stores.tokens.authenticate(old.token) !== null, 'the relay learned the key');
    const errors: Error[] = [];
    const c = createClient({ baseUrl: relayUrl, sdkKey: old.token, flushIntervalMs: 0 });
    c.on('error', (e) => errors.push(e));
    clients.push(c);
    await c.ready();
    const rotated = await api(srv).post(`/api/v1/tokens/${old.id}/rotate`, { overlapSeconds: 1 });
    expect(rotated.status).toBe(201);
    // The rotation reaches the relay as key changes: the new key works there, the old one still does.
    await until(() => relay!.stores.tokens.authenticate(rotated.body.token) !== null, 'the relay learned the new key');
    expect(relay!.stores.tokens.authenticate(old.token)).not.toBeNull();
    expect(c.status().connected).toBe(true);
    // After the overlap the relay's own timer closes the old key's stream (4003) and refuses it.
    await until(() => errors.some((e) => /4003/.test(e.message)), 'the old key’s stream at the relay closed after the overlap', 5000);
    expect((await request({ url: relayUrl, adminToken: '' }, 'GET', '/sdk/v1/flags', { token: old.token })).status).toBe(401);
    expect((await request({ url: relayUrl, adminToken: '' }, 'GET', '/sdk/v1/flags', { token: rotated.body.token })).status).toBe(200);
  });
});
