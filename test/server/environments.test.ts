import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
let a: ReturnType<typeof api>;
beforeAll(async () => {
  srv = await startServer();
  a = api(srv);
});
afterAll(async () => {
  await srv.close();
});

describe('environments', () => {
  it('creates an environment where every existing flag starts disabled, readable with its own SDK key', async () => {
    await a.post('/api/v1/flags', { key: 'pre-existing', kind: 'boolean' });
    const created = await a.post('/api/v1/environments', { key: 'eu-west', name: 'EU West' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ key: 'eu-west', name: 'EU West', version: 0 });
    expect((await a.get('/api/v1/environments/eu-west')).body.key).toBe('eu-west');
    expect((await a.get('/api/v1/environments')).body.environments.map((e: { key: string }) => e.key)).toEqual([
      'development',
      'staging',
      'production',
      'eu-west',
    ]);
    expect((await a.get('/api/v1/flags/pre-existing/environments/eu-west')).body).toMatchObject({ enabled: false, version: 1 });

    const key = (await a.post('/api/v1/tokens', { kind: 'sdk', environment: 'eu-west', name: 'eu app' })).body.token;
    const snap = await a.get('/sdk/v1/flags', { token: key });
    expect(snap.body).toMatchObject({ environment: 'eu-west', flags: [expect.objectContaining({ key: 'pre-existing' })] });
    // flags created afterwards reach the new environment too
    await a.post('/api/v1/flags', { key: 'later', kind: 'boolean' });
    expect((await a.post('/api/v1/flags/later/environments/eu-west/revive')).body.enabled).toBe(true);
  });

  it('refuses a duplicate or malformed environment with problem details and creates nothing', async () => {
    const dup = await a.post('/api/v1/environments', { key: 'production' });
    expect(dup.status).toBe(409);
    const bad = await a.post('/api/v1/environments', { key: 'Prod!' });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].path).toBe('/key');
    expect((await a.get('/api/v1/environments')).body.environments).toHaveLength(4);
    expect((await a.get('/api/v1/environments/nope')).status).toBe(404);
  });
});
