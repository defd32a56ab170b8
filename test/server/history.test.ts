/**
 * History of a flag's state per environment (CONTRACT §11): every version with actor, time and reason, newest first
 * with cursor pagination; the state at a past time (`?at=`); a diff of two versions; revert as a new, audited,
 * streamed write; un-archiving keeps the history. Real server, real SDK over the real stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { api, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
let a: ReturnType<typeof api>;
/** The server's clock runs ahead of the real one by this much: each step moves it a minute, so times are distinct. */
let offset = 0;
const step = () => (offset += 60_000);
const now = () => Date.now() + offset;

const ON = { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } };
const base = (key: string, env = 'production') => `/api/v1/flags/${key}/environments/${env}`;

beforeAll(async () => {
  srv = await startServer({ now });
  a = api(srv);
});
afterAll(async () => {
  await srv.close();
});

describe('flag state history', () => {
  it('lists every version from the first, newest first, with actor, action and reason, and pages by cursor', async () => {
    const oncall = await a.post('/api/v1/tokens', { kind: 'admin', name: 'oncall' });
    const other = api({ url: srv.url, adminToken: oncall.body.token });
    await a.post('/api/v1/flags', { key: 'checkout', kind: 'boolean' });
    step();
    expect((await a.put(base('checkout'), { ...ON, reason: 'launch' })).status).toBe(200);
    step();
    expect((await other.post(`${base('checkout')}/kill`, { reason: 'INC-7' })).status).toBe(200);
    step();
    await a.post(`${base('checkout')}/revive`);
    // An idempotent no-op writes no version.
    await a.post(`${base('checkout')}/revive`);

    const res = await a.get(`${base('checkout')}/history`);
    expect(res.status).toBe(200);
    const entries = res.body.entries;
    expect(entries.map((e: { version: number }) => e.version)).toEqual([4, 3, 2, 1]);
    expect(entries.map((e: { action: string }) => e.action)).toEqual(['flag.revive', 'flag.kill', 'flag-state.update', 'flag.create']);
    expect(entries[1]).toMatchObject({ actor: { tokenId: oncall.body.id, name: 'oncall' }, reason: 'INC-7', state: { enabled: false, version: 3 } });
    expect(entries[2]).toMatchObject({ reason: 'launch', state: { ...ON, targets: [], rules: [], version: 2 } });
    expect(entries[0]).not.toHaveProperty('reason');
    expect(entries[3].state).toMatchObject({ enabled: false, version: 1 });
    // Times are the writes' times, newest first, and the current state is the newest entry.
    const times = entries.map((e: { at: string }) => Date.parse(e.at));
    expect([...times].sort((x, y) => y - x)).toEqual(times);
    expect(times[1] - times[2]).toBeGreaterThanOrEqual(60_000);
    const current = (await a.get(base('checkout'))).body;
    expect(current.version).toBe(4);
    expect(entries[0].state).toEqual({
      enabled: current.enabled,
      offVariant: 'off',
      targets: [],
      rules: [],
      fallthrough: current.fallthrough,
      version: 4,
    });
    // Each environment has its own history; the other environments have only their creation.
    expect((await a.get(`${base('checkout', 'staging')}/history`)).body.entries.map((e: { version: number }) => e.version)).toEqual([1]);

    const page1 = await a.get(`${base('checkout')}/history?limit=3`);
    expect(page1.body.entries.map((e: { version: number }) => e.version)).toEqual([4, 3, 2]);
    expect(typeof page1.body.nextCursor).toBe('string');
    const page2 = await a.get(`${base('checkout')}/history?limit=3&cursor=${page1.body.nextCursor}`);
    expect(page2.body).toEqual({ entries: [entries[3]], nextCursor: null });

    const bad = await a.get(`${base('checkout')}/history?cursor=nonsense`);
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toContain('application/problem+json');
    expect(bad.body.errors).toEqual([{ path: '/query/cursor', message: 'is not a cursor from a previous page' }]);
    expect((await a.get(`${base('checkout')}/history?limit=0`)).status).toBe(400);
    expect((await a.get(`${base('nope')}/history`)).status).toBe(404);
    expect((await a.get(`${base('checkout', 'nowhere')}/history`)).status).toBe(404);
  });

  it('a new environment starts every flag with version 1 in its history', async () => {
    await a.post('/api/v1/flags', { key: 'env-born', kind: 'boolean' });
    step();
    expect((await a.post('/api/v1/environments', { key: 'qa', name: 'QA' })).status).toBe(201);
    const res = await a.get(`${base('env-born', 'qa')}/history`);
    expect(res.body.entries).toEqual([
      expect.objectContaining({ version: 1, action: 'environment.create', state: expect.objectContaining({ enabled: false }) }),
    ]);
  });

  it('?at= answers the state as it was then (RFC 3339 or epoch ms), 404 before the flag existed', async () => {
    step();
    const beforeCreation = now();
    step();
    await a.post('/api/v1/flags', { key: 'timeline', kind: 'boolean' });
    step();
    await a.put(base('timeline'), ON);
    step();
    const whileOn = now();
    step();
    await a.post(`${base('timeline')}/kill`, { reason: 'INC-9' });
    const killedAt = (await a.get(base('timeline'))).body.killedAt;
    step();
    const whileKilled = now();

    const missing = await a.get(`${base('timeline')}?at=${beforeCreation}`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toContain('application/problem+json');

    const on = await a.get(`${base('timeline')}?at=${encodeURIComponent(new Date(whileOn).toISOString())}`);
    expect(on.status).toBe(200);
    expect(on.headers.get('etag')).toBeNull();
    expect(on.body).toMatchObject({
      ...ON,
      version: 2,
      flag: 'timeline',
      environment: 'production',
      killedAt: null,
      killReason: null,
      panicked: false,
    });
    expect(Date.parse(on.body.updatedAt)).toBeLessThanOrEqual(whileOn);

    const off = await a.get(`${base('timeline')}?at=${whileKilled}`);
    expect(off.body).toMatchObject({ enabled: false, version: 3, killedAt, killReason: 'INC-9', panicked: false });
    // Without `at`, the current state, with its ETag.
    expect((await a.get(base('timeline'))).headers.get('etag')).toBe('"v3"');

    const bad = await a.get(`${base('timeline')}?at=yesterday`);
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].path).toBe('/query/at');
  });

  it('?at= says a flag held by kill-all was panicked then', async () => {
    await a.post('/api/v1/flags', { key: 'panicky', kind: 'boolean' });
    await a.put(base('panicky', 'staging'), ON);
    step();
    await a.post('/api/v1/environments/staging/kill-all', { reason: 'panic' });
    step();
    const during = now();
    step();
    await a.post('/api/v1/environments/staging/revive-all');
    const past = await a.get(`${base('panicky', 'staging')}?at=${during}`);
    expect(past.body).toMatchObject({ enabled: false, panicked: true, killReason: 'panic' });
    expect((await a.get(base('panicky', 'staging'))).body).toMatchObject({ enabled: true, panicked: false });
  });

  it('diffs two versions member by member as JSON pointers', async () => {
    await a.post('/api/v1/flags', {
      key: 'colors',
      kind: 'string',
      variants: [
        { key: 'red', value: 'red' },
        { key: 'blue', value: 'blue' },
      ],
    });
    await a.put(base('colors'), { enabled: true, offVariant: 'red', fallthrough: { variant: 'blue' } });
    await a.put(base('colors'), {
      enabled: true,
      offVariant: 'red',
      fallthrough: { variant: 'red' },
      rules: [{ id: 'pro', conditions: [{ attribute: 'plan', op: 'in', values: ['pro'] }], serve: { variant: 'blue' } }],
    });
    const d = await a.get(`${base('colors')}/history/diff?from=2&to=3`);
    expect(d.status).toBe(200);
    expect(d.body.from.version).toBe(2);
    expect(d.body.to.version).toBe(3);
    expect(d.body.changes).toEqual([
      {
        op: 'add',
        path: '/rules/0',
        after: { id: 'pro', conditions: [{ attribute: 'plan', op: 'in', values: ['pro'] }], serve: { variant: 'blue' } },
      },
      { op: 'replace', path: '/fallthrough/variant', before: 'blue', after: 'red' },
    ]);
    const back = await a.get(`${base('colors')}/history/diff?from=3&to=2`);
    expect(back.body.changes).toEqual([
      {
        op: 'remove',
        path: '/rules/0',
        before: { id: 'pro', conditions: [{ attribute: 'plan', op: 'in', values: ['pro'] }], serve: { variant: 'blue' } },
      },
      { op: 'replace', path: '/fallthrough/variant', before: 'red', after: 'blue' },
    ]);
    expect((await a.get(`${base('colors')}/history/diff?from=2&to=2`)).body.changes).toEqual([]);
    const created = await a.get(`${base('colors')}/history/diff?from=1&to=2`);
    expect(created.body.changes).toContainEqual({ op: 'replace', path: '/enabled', before: false, after: true });
    const missing = await a.get(`${base('colors')}/history/diff?from=1&to=9`);
    expect(missing.status).toBe(404);
    expect(missing.body.detail).toContain('no version 9');
    // Without parameters: what the last write changed; without `from`: from the version before `to`.
    expect((await a.get(`${base('colors')}/history/diff`)).body).toEqual(d.body);
    expect((await a.get(`${base('colors')}/history/diff?to=3`)).body).toEqual(d.body);
    expect((await a.get(`${base('colors')}/history/diff?from=1`)).body.to.version).toBe(3);
    expect((await a.get(`${base('colors')}/history/diff?from=x`)).status).toBe(400);
  });
});

describe('revert', () => {
  let sdk: AviaryClient;
  afterAll(async () => {
    await sdk?.close();
  });

  it('writes the old state as a new version, streams it to a connected SDK, audits it and records it in the history', async () => {
    await a.post('/api/v1/flags', { key: 'search', kind: 'boolean' });
    await a.put(base('search'), ON); // v2: on
    await a.post(`${base('search')}/kill`, { reason: 'bad results' }); // v3: off
    sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
    await sdk.ready();
    expect(sdk.variation('search', { key: 'u1' }, true)).toBe(false);
    const switched = new Promise<void>((resolve) => sdk.on('change', (keys: string[]) => keys.includes('search') && resolve()));

    const res = await a.post(`${base('search')}/revert`, { version: 2, reason: 'fixed in 1.4.2' });
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe('"v4"');
    expect(res.body).toMatchObject({ ...ON, version: 4, killedAt: null, killReason: null, flag: 'search', environment: 'production' });
    expect(res.body.environmentVersion).toBe((await a.get('/api/v1/environments/production')).body.version);
    await switched;
    expect(sdk.variation('search', { key: 'u1' }, false)).toBe(true);

    const audit = await a.get('/api/v1/audit?flag=search&action=flag-state.revert');
    expect(audit.body.entries).toHaveLength(1);
    expect(audit.body.entries[0]).toMatchObject({
      environment: 'production',
      reason: 'fixed in 1.4.2',
      before: { enabled: false, version: 3 },
      after: { enabled: true, version: 4 },
    });
    const history = (await a.get(`${base('search')}/history?limit=1`)).body.entries[0];
    expect(history).toMatchObject({ version: 4, action: 'flag-state.revert', reason: 'fixed in 1.4.2', state: { ...ON, version: 4 } });
  });

  it('refuses what it cannot do, changing nothing: unknown version 404, stale If-Match 412, bad body 400, invalid old state 409', async () => {
    const before = (await a.get(base('search'))).body;
    const missing = await a.post(`${base('search')}/revert`, { version: 99 });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toContain('application/problem+json');
    expect(missing.body.detail).toContain('no version 99');
    expect((await a.post(`${base('search')}/revert`, { version: 1 }, { headers: { 'if-match': '"v1"' } })).status).toBe(412);
    const bad = await a.post(`${base('search')}/revert`, { version: 0 });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].path).toBe('/version');
    expect((await a.post(`${base('search')}/revert`, { version: 1, extra: true })).status).toBe(400);
    expect((await a.post(`${base('nope')}/revert`, { version: 1 })).status).toBe(404);
    expect((await a.get(base('search'))).body).toEqual(before);

    // A version naming a segment that is gone no longer validates: 409 with the issue, nothing written.
    await a.post('/api/v1/segments', { key: 'beta', rules: [] });
    await a.put(base('search'), { ...ON, rules: [{ id: 'b', conditions: [{ segment: 'beta' }], serve: { variant: 'off' } }] }); // v5
    await a.put(base('search'), ON); // v6
    expect((await a.delete('/api/v1/segments/beta')).status).toBe(204);
    const stale = await a.post(`${base('search')}/revert`, { version: 5 });
    expect(stale.status).toBe(409);
    expect(stale.body.detail).toContain('no longer validates');
    expect((await a.get(base('search'))).body.version).toBe(6);
    expect((await a.get(`${base('search')}/history?limit=1`)).body.entries[0].version).toBe(6);
  });

  it('an archived flag refuses a revert (409); un-archived, it keeps its history and goes on from it', async () => {
    await a.post('/api/v1/flags', { key: 'legacy', kind: 'boolean' });
    await a.put(base('legacy'), ON);
    expect((await a.patch('/api/v1/flags/legacy', { archived: true })).status).toBe(200);
    const refused = await a.post(`${base('legacy')}/revert`, { version: 1 });
    expect(refused.status).toBe(409);
    expect((await a.get(`${base('legacy')}/history`)).body.entries.map((e: { version: number }) => e.version)).toEqual([2, 1]);

    expect((await a.patch('/api/v1/flags/legacy', { archived: false })).status).toBe(200);
    const reverted = await a.post(`${base('legacy')}/revert`, { version: 1 });
    expect(reverted.status).toBe(200);
    expect(reverted.body).toMatchObject({ enabled: false, version: 3 });
    const history = (await a.get(`${base('legacy')}/history`)).body.entries;
    expect(history.map((e: { version: number; action: string }) => [e.version, e.action])).toEqual([
      [3, 'flag-state.revert'],
      [2, 'flag-state.update'],
      [1, 'flag.create'],
    ]);
  });
});
