/**
 * Tokens (issue 17): role and environments on create, expiry (refused like a revoked token, SDK streams closed at
 * the moment), last used, and rotation with a real SDK: the old key keeps streaming through the overlap, is closed
 * (4003) after it, and the new key works. On SQLite, and once on PostgreSQL across two replicas.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { buildApp } from '../../server/app.js';
import { openPostgres } from '../../server/storage/postgres-port.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { api, request, startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/replicas.js';
import { apiTimeMs } from '../helpers/time.js';

const clients: AviaryClient[] = [];
function client(baseUrl: string, sdkKey: string): { c: AviaryClient; errors: Error[] } {
  const c = createClient({ baseUrl, sdkKey, flushIntervalMs: 0 });
  const errors: Error[] = [];
  c.on('error', (e) => errors.push(e));
  clients.push(c);
  return { c, errors };
}
afterAll(async () => {
  for (const c of clients) await c.close();
});

describe('tokens on SQLite', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer();
    expect((await api(srv).post('/api/v1/flags', { key: 'search', kind: 'boolean' })).status).toBe(201);
    expect((await api(srv).post('/api/v1/flags/search/environments/production/revive')).status).toBe(200);
  });
  afterAll(async () => srv?.close());

  it('creates admin tokens with a role and environments (audited), and refuses bad combinations naming the field', async () => {
    const a = api(srv);
    const created = await a.post('/api/v1/tokens', { kind: 'admin', role: 'editor', environments: ['staging'], name: 'stager' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ kind: 'admin', role: 'editor', environments: ['staging'], expiresAt: null, replacedBy: null });
    expect((await a.get(`/api/v1/tokens/${created.body.id}`)).body).toMatchObject({ role: 'editor', environments: ['staging'] });
    expect((await a.post('/api/v1/tokens', { kind: 'admin', name: 'plain' })).body.role).toBe('admin');
    const audit = await a.get('/api/v1/audit?limit=5');
    expect(audit.body.entries.find((e: { resourceKey: string }) => e.resourceKey === created.body.id)).toMatchObject({
      action: 'token.create',
      after: { role: 'editor', environments: ['staging'] },
    });

    const before = (await a.get('/api/v1/tokens')).body.tokens.length;
    const bad = async (body: unknown, path: string) => {
      const res = await a.post('/api/v1/tokens', body);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path);
    };
    await bad({ kind: 'admin', role: 'boss', name: 'x' }, '/role');
    await bad({ kind: 'admin', role: 'editor', environments: ['nope'], name: 'x' }, '/environments/0');
    await bad({ kind: 'admin', role: 'viewer', environments: ['staging'], name: 'x' }, '/environments');
    await bad({ kind: 'admin', environments: ['staging'], name: 'x' }, '/environments');
    await bad({ kind: 'sdk', environment: 'staging', role: 'editor', name: 'x' }, '/role');
    await bad({ kind: 'admin', name: 'x', expiresAt: new Date(Date.now() - 1000).toISOString() }, '/expiresAt');
    await bad({ kind: 'admin', name: 'x', expiresAt: 'tomorrow' }, '/expiresAt');
    expect((await a.get('/api/v1/tokens')).body.tokens.length).toBe(before);
  });

  it('a scoped editor changes flag states in its environment only; not flags every environment shares', async () => {
    const a = api(srv);
    const { token } = (await a.post('/api/v1/tokens', { kind: 'admin', role: 'editor', environments: ['staging'], name: 'scoped' })).body;
    expect((await a.post('/api/v1/flags/search/environments/staging/kill', undefined, { token })).status).toBe(200);
    expect((await a.post('/api/v1/flags/search/environments/production/kill', undefined, { token })).status).toBe(403);
    expect((await a.post('/api/v1/flags', { key: 'new-one', kind: 'boolean' }, { token })).status).toBe(403);
    expect((await a.delete('/api/v1/flags/search', { token })).status).toBe(403);
    expect((await a.get('/api/v1/flags/search/environments/production', { token })).status).toBe(200);
    expect((await a.get('/api/v1/flags/search/environments/production')).body.enabled).toBe(true);
    expect((await a.get('/api/v1/flags/search')).status).toBe(200);
  });

  it('lastUsedAt is set when an admin token and an SDK key are used', async () => {
    const a = api(srv);
    const admin = (await a.post('/api/v1/tokens', { kind: 'admin', role: 'viewer', name: 'used' })).body;
    const sdk = (await a.post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'used-sdk' })).body;
    expect(admin.lastUsedAt).toBeNull();
    expect(sdk.lastUsedAt).toBeNull();
    const t0 = Date.now();
    expect((await a.get('/api/v1/flags', { token: admin.token })).status).toBe(200);
    expect((await request(srv, 'GET', '/sdk/v1/flags', { token: sdk.token })).status).toBe(200);
    await until(async () => (await a.get(`/api/v1/tokens/${sdk.id}`)).body.lastUsedAt !== null, 'the SDK key last used');
    const usedSdk = (await a.get(`/api/v1/tokens/${sdk.id}`)).body.lastUsedAt;
    const usedAdmin = (await a.get(`/api/v1/tokens/${admin.id}`)).body.lastUsedAt;
    expect(apiTimeMs(usedSdk)).toBeGreaterThanOrEqual(t0 - 1000);
    expect(apiTimeMs(usedAdmin)).toBeGreaterThanOrEqual(t0 - 1000);
  });

  it('an expired token is refused like a revoked one, and the streams of an expiring SDK key close when it expires', async () => {
    const a = api(srv);
    const expiresAt = new Date(Date.now() + 1500).toISOString();
    const admin = (await a.post('/api/v1/tokens', { kind: 'admin', role: 'viewer', name: 'short', expiresAt })).body;
    const sdk = (await a.post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'short-sdk', expiresAt })).body;
    expect(admin.expiresAt).toBe(expiresAt);
    expect((await a.get('/api/v1/flags', { token: admin.token })).status).toBe(200);
    const { c, errors } = client(srv.url, sdk.token);
    await c.ready();
    expect(c.status().connected).toBe(true);
    await until(() => errors.some((e) => /4003/.test(e.message)), 'the expired key’s stream closed with 4003', 5000);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(expiresAt));
    expect(errors.find((e) => /4003/.test(e.message))!.message).toMatch(/expired/);
    expect(c.status().connected).toBe(false);
    expect(c.variation('search', { key: 'u' }, false)).toBe(true);
    const refused = await a.get('/api/v1/flags', { token: admin.token });
    expect(refused.status).toBe(401);
    expect(refused.body.detail).toBe('This token has expired.');
    expect((await request(srv, 'GET', '/sdk/v1/flags', { token: sdk.token })).status).toBe(401);
  });

  it('rotation: the old SDK key streams through the overlap and is closed after it; the new key works; audited', async () => {
    const a = api(srv);
    const old = (await a.post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'web', clientSide: true })).body;
    const oldClient = client(srv.url, old.token);
    await oldClient.c.ready();

    const rotated = await a.post(`/api/v1/tokens/${old.id}/rotate`, { overlapSeconds: 2 });
    expect(rotated.status).toBe(201);
    expect(rotated.headers.get('cache-control')).toBe('no-store');
    expect(rotated.body).toMatchObject({ kind: 'sdk', environment: 'production', name: 'web', clientSide: true, replacedBy: null, expiresAt: null });
    expect(rotated.body.token).toMatch(/^avi_sdk_/);
    expect(rotated.body.id).not.toBe(old.id);
    const oldInfo = (await a.get(`/api/v1/tokens/${old.id}`)).body;
    expect(oldInfo.replacedBy).toBe(rotated.body.id);
    const until_ = apiTimeMs(oldInfo.expiresAt);
    expect(until_ - Date.now()).toBeGreaterThan(1000);
    expect(until_ - Date.now()).toBeLessThanOrEqual(2000);
    // A second rotation of the replaced token is refused.
    expect((await a.post(`/api/v1/tokens/${old.id}/rotate`, {})).status).toBe(409);

    // Through the overlap: the old key streams and reads; the new key streams too.
    const newClient = client(srv.url, rotated.body.token);
    await newClient.c.ready();
    expect(oldClient.c.status().connected).toBe(true);
    expect((await request(srv, 'GET', '/sdk/v1/flags', { token: old.token })).status).toBe(200);
    expect((await a.post('/api/v1/flags/search/environments/production/kill')).status).toBe(200);
    await until(() => oldClient.c.variation('search', { key: 'u' }, true) === false, 'the old key’s stream gets the kill during the overlap');

    // After it: closed with 4003, refused; the new key keeps streaming.
    await until(() => oldClient.errors.some((e) => /4003/.test(e.message)), 'the old key’s stream closed after the overlap', 5000);
    expect(Date.now()).toBeGreaterThanOrEqual(until_);
    expect((await request(srv, 'GET', '/sdk/v1/flags', { token: old.token })).status).toBe(401);
    expect(newClient.c.status().connected).toBe(true);
    expect((await a.post('/api/v1/flags/search/environments/production/revive')).status).toBe(200);
    await until(() => newClient.c.variation('search', { key: 'u' }, false) === true, 'the new key’s stream gets the revive');
    expect(newClient.errors).toEqual([]);

    const entries = (await a.get('/api/v1/audit?limit=50')).body.entries as { action: string; resourceKey: string; after: any; reason: string }[];
    const rotation = entries.find((e) => e.action === 'token.rotate' && e.resourceKey === old.id)!;
    expect(rotation.after).toMatchObject({ replacedBy: rotated.body.id });
    expect(rotation.reason).toContain(rotated.body.id);
    expect(JSON.stringify(entries)).not.toContain(rotated.body.token);
    expect(entries.some((e) => e.action === 'token.create' && e.resourceKey === rotated.body.id)).toBe(true);
  });

  it('rotation keeps an admin token’s role and environments; overlap 0 ends the old one now; bad input changes nothing', async () => {
    const a = api(srv);
    const old = (await a.post('/api/v1/tokens', { kind: 'admin', role: 'oncall', environments: ['production'], name: 'pager' })).body;
    const bad = await a.post(`/api/v1/tokens/${old.id}/rotate`, { overlapSeconds: -5 });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].path).toBe('/overlapSeconds');
    expect((await a.get(`/api/v1/tokens/${old.id}`)).body.replacedBy).toBeNull();
    expect((await a.post('/api/v1/tokens/configured-admin/rotate', {})).status).toBe(409);
    expect((await a.post('/api/v1/tokens/nope/rotate', {})).status).toBe(404);

    const rotated = await a.post(`/api/v1/tokens/${old.id}/rotate`, { overlapSeconds: 0 });
    expect(rotated.status).toBe(201);
    expect(rotated.body).toMatchObject({ kind: 'admin', role: 'oncall', environments: ['production'], name: 'pager' });
    expect((await a.get('/api/v1/me', { token: old.token })).status).toBe(401);
    const me = await a.get('/api/v1/me', { token: rotated.body.token });
    expect(me.body).toMatchObject({ role: 'oncall', environments: ['production'] });
  });
});

describe('rotation on PostgreSQL across two replicas', () => {
  const ADMIN = 'roles-rotation-admin-token-0123456789';
  let db: TestDatabase;
  const apps: FastifyInstance[] = [];
  const start = async () => {
    const app = await buildApp({ store: await openPostgres(db.url), adminToken: ADMIN, replica: { pollMs: 60_000 } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    apps.push(app);
    return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  };
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    for (const app of apps) await app.close();
    await db?.drop();
  });

  it('rotated on one replica, the old key’s stream on the other works through the overlap and is closed after it', async () => {
    const a = await start();
    const b = await start();
    const onA = api({ url: a, adminToken: ADMIN });
    const onB = api({ url: b, adminToken: ADMIN });
    expect((await onA.post('/api/v1/flags', { key: 'search', kind: 'boolean' })).status).toBe(201);
    const old = (await onA.post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'svc' })).body;
    await until(async () => (await request({ url: b, adminToken: old.token }, 'GET', '/sdk/v1/flags')).status === 200, 'replica B knows the key');
    const oldClient = client(b, old.token);
    await oldClient.c.ready();

    const rotated = await onA.post(`/api/v1/tokens/${old.id}/rotate`, { overlapSeconds: 2 });
    expect(rotated.status).toBe(201);
    const ends = apiTimeMs((await onA.get(`/api/v1/tokens/${old.id}`)).body.expiresAt);
    // Replica B hears of the rotation (NOTIFY) and serves the new key; the old one works through the overlap.
    await until(
      async () => (await request({ url: b, adminToken: rotated.body.token }, 'GET', '/sdk/v1/flags')).status === 200,
      'replica B knows the new key',
    );
    expect((await onB.get(`/api/v1/tokens/${old.id}`)).body.replacedBy).toBe(rotated.body.id);
    expect(oldClient.c.status().connected).toBe(true);
    const newClient = client(b, rotated.body.token);
    await newClient.c.ready();

    await until(() => oldClient.errors.some((e) => /4003/.test(e.message)), 'replica B closed the old key’s stream', 6000);
    expect(Date.now()).toBeGreaterThanOrEqual(ends);
    expect((await request({ url: b, adminToken: old.token }, 'GET', '/sdk/v1/flags')).status).toBe(401);
    expect((await request({ url: a, adminToken: old.token }, 'GET', '/sdk/v1/flags')).status).toBe(401);
    expect(newClient.c.status().connected).toBe(true);
  });
});
