import { Agent, request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer, sqliteOf } from '../helpers/server.js';
import { apiTimeMs } from '../helpers/time.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer();
});
afterAll(async () => {
  await srv.close();
});

const PROBLEM = 'application/problem+json';

describe('auth matrix', () => {
  it('rejects admin routes without a token, with a wrong token, and with an SDK key', async () => {
    const a = api(srv);
    const none = await a.get('/api/v1/flags', { token: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('content-type')).toContain(PROBLEM);
    expect(none.body.type).toBe('https://aviary.dev/problems/unauthorized');
    const wrong = await a.get('/api/v1/flags', { token: 'not-a-real-token-at-all' });
    expect(wrong.status).toBe(401);
    const sdk = await a.get('/api/v1/flags', { token: srv.sdkKeys.production });
    expect(sdk.status).toBe(403);
    expect(sdk.body.type).toBe('https://aviary.dev/problems/forbidden');
    const malformedHeader = await a.get('/api/v1/flags', { token: null, headers: { authorization: 'Basic abc' } });
    expect(malformedHeader.status).toBe(401);
  });

  it('rejects SDK routes without a key and with an admin token', async () => {
    const a = api(srv);
    expect((await a.get('/sdk/v1/flags', { token: null })).status).toBe(401);
    const admin = await a.get('/sdk/v1/flags');
    expect(admin.status).toBe(403);
    expect((await a.post('/sdk/v1/evaluate', { context: { key: 'u' } })).status).toBe(403);
  });

  it('an SDK key reads only its own environment', async () => {
    const a = api(srv);
    const own = await a.get('/sdk/v1/flags?environment=staging', { token: srv.sdkKeys.staging });
    expect(own.status).toBe(200);
    expect(own.body.environment).toBe('staging');
    const other = await a.get('/sdk/v1/flags?environment=production', { token: srv.sdkKeys.staging });
    expect(other.status).toBe(403);
    expect(other.body.detail).toContain('staging');
  });

  it('SDK keys can change nothing: admin write routes answer 403 and nothing is stored', async () => {
    const a = api(srv);
    const res = await a.post('/api/v1/flags', { key: 'sneaky', kind: 'boolean' }, { token: srv.sdkKeys.production });
    expect(res.status).toBe(403);
    expect((await a.get('/api/v1/flags/sneaky')).status).toBe(404);
  });
});

describe('tokens', () => {
  it('shows an SDK token secret once, scopes it to one environment, records last use, and revokes it', async () => {
    const a = api(srv);
    const created = await a.post('/api/v1/tokens', { kind: 'sdk', environment: 'development', name: 'web app' });
    expect(created.status).toBe(201);
    expect(created.headers.get('cache-control')).toBe('no-store');
    const { token, id } = created.body;
    expect(token).toMatch(/^avi_sdk_/);
    expect(created.body).toMatchObject({ kind: 'sdk', environment: 'development', name: 'web app', lastUsedAt: null, revokedAt: null });
    expect(token.startsWith(created.body.prefix)).toBe(true);

    const listed = await a.get('/api/v1/tokens');
    const entry = listed.body.tokens.find((t: { id: string }) => t.id === id);
    expect(entry).toBeDefined();
    expect(entry.token).toBeUndefined();
    expect(JSON.stringify(listed.body)).not.toContain(token);

    // only a hash is stored
    const stored = sqliteOf(srv.app).prepare('SELECT * FROM tokens WHERE id = ?').get(id) as Record<string, unknown>;
    expect(JSON.stringify(stored)).not.toContain(token.slice(created.body.prefix.length));
    expect(stored.hash).toMatch(/^[0-9a-f]{64}$/);

    const read = await a.get('/sdk/v1/flags', { token });
    expect(read.status).toBe(200);
    expect(read.body.environment).toBe('development');
    const used = apiTimeMs((await a.get(`/api/v1/tokens/${id}`)).body.lastUsedAt);
    expect(used).toBeGreaterThanOrEqual(apiTimeMs(created.body.createdAt));
    expect(used).toBeLessThanOrEqual(Date.now());
    expect((await a.get('/api/v1/flags', { token })).status).toBe(403);

    const revoked = await a.delete(`/api/v1/tokens/${id}`);
    expect(revoked.status).toBe(200);
    expect(apiTimeMs(revoked.body.revokedAt)).toBeGreaterThanOrEqual(used);
    const after = await a.get('/sdk/v1/flags', { token });
    expect(after.status).toBe(401);
    expect(after.body.detail).toContain('revoked');
  });

  it('emits token.revoked on the change feed when a token is revoked', async () => {
    const a = api(srv);
    const created = await a.post('/api/v1/tokens', { kind: 'sdk', environment: 'staging', name: 'to revoke' });
    const seen: string[] = [];
    const listener = (e: { tokenId: string }) => seen.push(e.tokenId);
    srv.app.changeFeed.on('token.revoked', listener);
    await a.delete(`/api/v1/tokens/${created.body.id}`);
    srv.app.changeFeed.off('token.revoked', listener);
    expect(seen).toEqual([created.body.id]);
  });

  it('a new admin token works on the admin API and, once revoked, no longer does', async () => {
    const a = api(srv);
    const created = await a.post('/api/v1/tokens', { kind: 'admin', name: 'ops laptop' });
    expect(created.status).toBe(201);
    const other = api({ url: srv.url, adminToken: created.body.token });
    expect((await other.get('/api/v1/environments')).status).toBe(200);
    // writes are attributed to the token that made them
    await other.post('/api/v1/environments', { key: 'qa', name: 'QA' });
    const audit = await a.get('/api/v1/audit?resourceType=environment');
    expect(audit.body.entries[0]).toMatchObject({
      action: 'environment.create',
      resourceKey: 'qa',
      actor: { tokenId: created.body.id, name: 'ops laptop' },
    });
    await a.delete(`/api/v1/tokens/${created.body.id}`);
    expect((await other.get('/api/v1/environments')).status).toBe(401);
  });

  it('rejects bad token requests with the field path, and refuses to revoke configured tokens', async () => {
    const a = api(srv);
    const noEnv = await a.post('/api/v1/tokens', { kind: 'sdk', name: 'x' });
    expect(noEnv.status).toBe(400);
    expect(noEnv.body.errors).toContainEqual({ path: '/environment', message: expect.any(String) });
    const badEnv = await a.post('/api/v1/tokens', { kind: 'sdk', name: 'x', environment: 'nope' });
    expect(badEnv.status).toBe(400);
    const badKind = await a.post('/api/v1/tokens', { kind: 'root', name: 'x' });
    expect(badKind.body.errors).toContainEqual({ path: '/kind', message: expect.any(String) });
    const configured = (await a.get('/api/v1/tokens')).body.tokens.find(
      (t: { configured: boolean; kind: string }) => t.configured && t.kind === 'admin',
    );
    const refused = await a.delete(`/api/v1/tokens/${configured.id}`);
    expect(refused.status).toBe(409);
    expect((await a.get('/api/v1/environments')).status).toBe(200);
    expect((await a.delete('/api/v1/tokens/does-not-exist')).status).toBe(404);
  });
});

describe('every request on a keep-alive connection is authenticated afresh', () => {
  it('a key revoked between two requests on the same connection is refused at once, and a forged key is never accepted', async () => {
    const created = await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'keep-alive' });
    const key = created.body.token as string;
    // One socket for every request below: keep-alive with at most one connection.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    const evaluate = (secret: string) =>
      new Promise<number>((resolve, reject) => {
        const body = JSON.stringify({ context: { key: 'u' } });
        const req = httpRequest(
          `${srv.url}/sdk/v1/evaluate`,
          { method: 'POST', agent, headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' } },
          (res) => {
            sockets.add(res.socket);
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    try {
      expect(await evaluate(key)).toBe(200);
      expect(await evaluate(key)).toBe(200);
      const forged = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
      expect(await evaluate(forged)).toBe(401);
      expect(await evaluate(srv.sdkKeys.production)).toBe(200);
      expect((await api(srv).delete(`/api/v1/tokens/${created.body.id}`)).status).toBe(200);
      expect(await evaluate(key)).toBe(401);
      expect(await evaluate(srv.sdkKeys.production)).toBe(200);
      expect(sockets.size).toBe(1);
    } finally {
      agent.destroy();
    }
  });
});
