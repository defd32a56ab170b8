/**
 * A relay behind replicas (issue 13, on PostgreSQL): the relay follows replica A; a kill written on replica B reaches
 * the SDK behind the relay, and B's receipt and SDK list count it with its relay path (through presence). A key
 * revoked on B is closed at the relay (the key change travels through the shared change log).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { buildRelayApp } from '../../server/relay/relay-app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { call, startReplica, until } from '../helpers/replicas.js';
import type { ServerProcess } from '../stream/server-process.js';

let db: TestDatabase;
let a: ServerProcess;
let b: ServerProcess;
let relay: FastifyInstance;
let relayUrl: string;
let sdk: AviaryClient;
const dir = mkdtempSync(join(tmpdir(), 'aviary-relay-replicas-'));

beforeAll(async () => {
  db = await createTestDatabase();
  a = await startReplica(db.url, '127.0.0.11');
  b = await startReplica(db.url, '127.0.0.12');
  await call(a.url, 'POST', '/api/v1/flags', { key: 'checkout', kind: 'boolean' });
  await call(a.url, 'POST', '/api/v1/flags/checkout/environments/production/revive');
  const token = (await call(a.url, 'POST', '/api/v1/tokens', { kind: 'relay', name: 'edge', environments: ['production'] })).body.token;
  relay = await buildRelayApp({ upstream: a.url, token, cacheDir: join(dir, 'cache') });
  await relay.listen({ port: 0, host: '127.0.0.1' });
  const addr = relay.server.address();
  relayUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  sdk = createClient({ baseUrl: relayUrl, sdkKey: a.sdkKey, flushIntervalMs: 0 });
  await sdk.ready();
}, 60_000);

afterAll(async () => {
  await sdk?.close();
  await relay?.close();
  await a?.stop();
  await b?.stop();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a relay behind replicas', () => {
  it('a kill on another replica reaches the SDK behind the relay, and that replica’s receipt counts it with its path', async () => {
    await until(
      async () => (await call(b.url, 'GET', '/api/v1/environments/production/sdks')).body.items.length === 1,
      'B lists the SDK behind the relay',
    );
    const killed = await call(b.url, 'POST', '/api/v1/flags/checkout/environments/production/kill?waitMs=10000');
    expect(killed.status).toBe(200);
    expect(killed.body.delivery).toMatchObject({ connected: 1, applied: 1, complete: true });
    expect(sdk.variation('checkout', { key: 'u' }, true)).toBe(false);
    const items = (await call(b.url, 'GET', '/api/v1/environments/production/sdks')).body.items;
    expect(items).toEqual([expect.objectContaining({ id: sdk.sdkId, via: ['edge'], appliedVersion: killed.body.environmentVersion })]);
  }, 30_000);

  it('a key revoked on another replica is closed at the relay', async () => {
    const created = await call(b.url, 'POST', '/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'doomed' });
    const key = created.body.token as string;
    await until(
      async () => (await fetch(`${relayUrl}/sdk/v1/flags`, { headers: { authorization: `Bearer ${key}` } })).status === 200,
      'the relay knows the key',
    );
    const ws = new WebSocket(`${relayUrl.replace('http', 'ws')}/sdk/v1/stream`, { headers: { authorization: `Bearer ${key}` } });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    let hydrated = false;
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', sdkId: 'doomed-1', sdkVersion: 'test' })));
    ws.on('message', (d) => {
      if (JSON.parse(d.toString()).type === 'hydrate') hydrated = true;
    });
    await until(() => hydrated, 'the stream hydrated');
    expect((await call(b.url, 'DELETE', `/api/v1/tokens/${created.body.id}`)).status).toBe(200);
    expect(await closed).toBe(4003);
  }, 30_000);
});
