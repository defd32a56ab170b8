/**
 * The relay in-process against a real server (issue 13): the server's own SDK routes served by the relay (snapshot,
 * evaluate, OFREP), metric reports validated at the relay and passed upstream (counted once per `(sdkId, seq)`),
 * client-side keys' reports refused honestly (503), and `/readyz` 503 while it holds no snapshot.
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
  relay = await buildRelayApp({ upstream, token, cacheDir: join(dir, 'cache'), backoff: { initialMs: 100, maxMs: 500 } });
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

  it('passes SDK metric reports upstream, counted once; refuses a bad report and client-side keys’ reports', async () => {
    await startRelay(srv.url, await relayToken());
    // Connected at once, before the relay heard its keys: told to retry (1013), not refused for good.
    const c = createClient({ baseUrl: relayUrl, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0, backoff: { initialMs: 100 } });
    clients.push(c);
    await c.ready();
    for (let i = 0; i < 50; i++) c.variation('checkout', { key: `u${i}` }, false);
    expect(await c.flush()).toBe(true);
    const res = await api(srv).get('/api/v1/flags/checkout/environments/production/metrics');
    expect(res.body.totals.on).toMatchObject({ evaluations: 50 });

    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    const report = { sdkId: 'retry-sdk', seq: 1, stats: [{ flag: 'checkout', variant: 'on', minute, evaluations: 7, outcomes: 0, errors: 0 }] };
    const at = { url: relayUrl, adminToken: '' };
    expect((await request(at, 'POST', '/sdk/v1/metrics', { token: srv.sdkKeys.production, body: report })).status).toBe(200);
    const again = await request(at, 'POST', '/sdk/v1/metrics', { token: srv.sdkKeys.production, body: report });
    expect(again.body).toMatchObject({ accepted: true, duplicate: true });
    expect((await api(srv).get('/api/v1/flags/checkout/environments/production/metrics')).body.totals.on.evaluations).toBe(57);

    const bad = await request(at, 'POST', '/sdk/v1/metrics', {
      token: srv.sdkKeys.production,
      body: { ...report, seq: 2, stats: [{ ...report.stats[0], flag: 'nope' }] },
    });
    expect(bad.status).toBe(400);
    const clientKey = (await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'web', clientSide: true })).body.token;
    await until(() => relay!.stores.tokens.authenticate(clientKey) !== null, 'the relay learned the client-side key');
    const refused = await request(at, 'POST', '/sdk/v1/metrics', { token: clientKey, body: { ...report, sdkId: 'web-1' } });
    expect(refused.status).toBe(503);
    expect(refused.body.detail).toMatch(/metrics forwarding not configured/);
    expect((await api(srv).get('/api/v1/flags/checkout/environments/production/metrics')).body.totals.on.evaluations).toBe(57);
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
});
