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

describe('flag definitions', () => {
  it('creates a boolean flag with on/off variants and a disabled state in every environment', async () => {
    const res = await a.post('/api/v1/flags', { key: 'new-checkout', kind: 'boolean', description: 'One-page checkout', tags: ['web', 'checkout'] });
    expect(res.status).toBe(201);
    expect(res.headers.get('etag')).toBe('"r1"');
    expect(res.headers.get('location')).toBe('/api/v1/flags/new-checkout');
    expect(res.body).toMatchObject({
      key: 'new-checkout',
      kind: 'boolean',
      variants: [
        { key: 'on', value: true },
        { key: 'off', value: false },
      ],
      archived: false,
      environments: { development: { enabled: false }, staging: { enabled: false }, production: { enabled: false } },
    });
    const got = await a.get('/api/v1/flags/new-checkout');
    expect(got.status).toBe(200);
    expect(got.headers.get('etag')).toBe('"r1"');
  });

  it('refuses a duplicate key with 409 and an invalid definition with 400 naming the field', async () => {
    expect((await a.post('/api/v1/flags', { key: 'dup', kind: 'boolean' })).status).toBe(201);
    const dup = await a.post('/api/v1/flags', { key: 'dup', kind: 'boolean' });
    expect(dup.status).toBe(409);
    expect(dup.headers.get('content-type')).toContain('application/problem+json');
    const bad = await a.post('/api/v1/flags', { key: 'Bad Key', kind: 'string', variants: [{ key: 'a', value: 1 }] });
    expect(bad.status).toBe(400);
    expect(bad.body.type).toBe('https://aviary.dev/problems/validation');
    expect(bad.body.errors.map((e: { path: string }) => e.path)).toContain('/key');
    // A key that cannot exist is a bad request (the path parameter fails the spec's pattern), not a missing flag.
    const badPath = await a.get('/api/v1/flags/Bad%20Key');
    expect(badPath.status).toBe(400);
    expect(badPath.body.errors.map((e: { path: string }) => e.path)).toEqual(['/params/key']);
    expect((await a.get('/api/v1/flags/no-such-flag')).status).toBe(404);
  });

  it('lists flags filtered by tag, search text, archived and environment state', async () => {
    await a.post('/api/v1/flags', {
      key: 'search-v2',
      kind: 'string',
      variants: [
        { key: 'a', value: 'a' },
        { key: 'b', value: 'b' },
      ],
      tags: ['search'],
      description: 'Elastic ranking',
    });
    await a.post('/api/v1/flags/search-v2/environments/staging/revive');
    const keys = (r: { body: { flags: { key: string }[] } }) => r.body.flags.map((f) => f.key);
    expect(keys(await a.get('/api/v1/flags?tag=search'))).toEqual(['search-v2']);
    expect(keys(await a.get('/api/v1/flags?q=elastic'))).toEqual(['search-v2']);
    expect(keys(await a.get('/api/v1/flags?environment=staging&enabled=true'))).toEqual(['search-v2']);
    expect(keys(await a.get('/api/v1/flags?environment=production&enabled=true'))).toEqual([]);
    const bad = await a.get('/api/v1/flags?enabled=maybe&environment=staging');
    expect(bad.status).toBe(400);
    expect(bad.body.errors).toContainEqual({ path: '/query/enabled', message: expect.any(String) });
  });

  it('patches with If-Match, answers 412 on a stale ETag and leaves the flag unchanged', async () => {
    await a.post('/api/v1/flags', { key: 'patchable', kind: 'boolean', description: 'v1' });
    const first = await a.patch('/api/v1/flags/patchable', { description: 'v2' }, { headers: { 'if-match': '"r1"' } });
    expect(first.status).toBe(200);
    expect(first.headers.get('etag')).toBe('"r2"');
    expect(first.body.description).toBe('v2');
    const stale = await a.patch('/api/v1/flags/patchable', { description: 'v3' }, { headers: { 'if-match': '"r1"' } });
    expect(stale.status).toBe(412);
    expect(stale.body.type).toBe('https://aviary.dev/problems/precondition-failed');
    const now = await a.get('/api/v1/flags/patchable');
    expect(now.body.description).toBe('v2');
    expect(now.body.revision).toBe(2);
    const merge = await a.patch('/api/v1/flags/patchable', { tags: ['x'] }, { headers: { 'content-type': 'application/merge-patch+json' } });
    expect(merge.status).toBe(200);
    expect(merge.body.tags).toEqual(['x']);
  });

  it('refuses to change key or kind, and refuses variants that would break a stored state (409 naming it)', async () => {
    await a.post('/api/v1/flags', {
      key: 'colors',
      kind: 'string',
      variants: [
        { key: 'red', value: 'red' },
        { key: 'blue', value: 'blue' },
      ],
    });
    const kind = await a.patch('/api/v1/flags/colors', { kind: 'number' });
    expect(kind.status).toBe(400);
    expect(kind.body.errors).toContainEqual({ path: '/kind', message: expect.any(String) });
    // the default state's offVariant is the last variant ("blue"): dropping it would break every environment
    const broken = await a.patch('/api/v1/flags/colors', { variants: [{ key: 'red', value: 'red' }] });
    expect(broken.status).toBe(409);
    expect(broken.body.errors.map((e: { path: string }) => e.path)).toContain('/environments/production/state/offVariant');
    const wrongType = await a.patch('/api/v1/flags/colors', {
      variants: [
        { key: 'red', value: 1 },
        { key: 'blue', value: 'blue' },
      ],
    });
    expect(wrongType.status).toBe(400);
    const after = await a.get('/api/v1/flags/colors');
    expect(after.body.variants).toHaveLength(2);
    expect(after.body.revision).toBe(1);
  });

  it('archives on DELETE: the flag leaves SDK snapshots and is listed with archived=true', async () => {
    await a.post('/api/v1/flags', { key: 'old-banner', kind: 'boolean' });
    const before = await a.get('/sdk/v1/flags', { token: srv.sdkKeys.production });
    expect(before.body.flags.map((f: { key: string }) => f.key)).toContain('old-banner');
    const del = await a.delete('/api/v1/flags/old-banner');
    expect(del.status).toBe(200);
    expect(del.body.archived).toBe(true);
    const snap = await a.get('/sdk/v1/flags', { token: srv.sdkKeys.production });
    expect(snap.body.flags.map((f: { key: string }) => f.key)).not.toContain('old-banner');
    expect(snap.body.version).toBeGreaterThan(before.body.version);
    const listed = await a.get('/api/v1/flags?archived=true');
    expect(listed.body.flags.map((f: { key: string }) => f.key)).toEqual(['old-banner']);
    expect((await a.get('/api/v1/flags')).body.flags.map((f: { key: string }) => f.key)).not.toContain('old-banner');
    const changeState = await a.post('/api/v1/flags/old-banner/environments/production/revive');
    expect(changeState.status).toBe(409);
    expect((await a.delete('/api/v1/flags/nope')).status).toBe(404);
  });

  it('addresses a flag with the longest key the contract allows (128 characters); longer paths get problem details', async () => {
    const key = `k${'x'.repeat(127)}`;
    expect((await a.post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
    expect((await a.get(`/api/v1/flags/${key}`)).body.key).toBe(key);
    expect((await a.post(`/api/v1/flags/${key}/environments/production/kill`)).status).toBe(200);
    const tooLong = await a.get(`/api/v1/flags/${'y'.repeat(600)}`);
    expect([404, 414]).toContain(tooLong.status);
    expect(tooLong.headers.get('content-type')).toContain('application/problem+json');
    const badEscape = await a.get('/api/v1/flags/%E0%A4%A');
    expect(badEscape.status).toBe(400);
    expect(badEscape.headers.get('content-type')).toContain('application/problem+json');
  });

  it('rejects a body that is not JSON, or not an object, with problem details', async () => {
    const notJson = await a.post('/api/v1/flags', '{"key":');
    expect(notJson.status).toBe(400);
    expect(notJson.headers.get('content-type')).toContain('application/problem+json');
    const array = await a.post('/api/v1/flags', [1, 2]);
    expect(array.status).toBe(400);
    expect(array.body.errors).toEqual([{ path: '', message: expect.any(String) }]);
  });
});
