/**
 * Change requests end to end (CONTRACT §11): a real server, a real SDK on its stream, two admin tokens. With approval
 * on, a PUT of a state is held (202) and SDKs see nothing; the author cannot approve it; another admin approves;
 * apply streams it; apply on a moved base is a 409 with the diff; the switches are never held.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { until } from '../stream/fixtures.js';

let srv: TestServer;
let a: ReturnType<typeof api>;
let b: ReturnType<typeof api>;
let reviewerId: string;
let sdk: AviaryClient;
/** Every flag key the SDK was told changed, in order. */
const changed: string[] = [];

const ON = { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } };
const path = (flag: string) => `/api/v1/flags/${flag}/environments/production`;
const requests = async () => (await a.get('/api/v1/change-requests')).body.changeRequests as { id: string; status: string }[];

/** Writes `sentinel` straight through (a revive or kill, never held) and waits for the SDK to apply it. */
async function sentinelRoundTrip(): Promise<void> {
  const seen = changed.length;
  const enabled = (await a.get(path('sentinel'))).body.enabled as boolean;
  const res = await a.post(`${path('sentinel')}/${enabled ? 'kill' : 'revive'}`);
  expect(res.status).toBe(200);
  await until(() => changed.slice(seen).includes('sentinel'), 'the SDK applies the sentinel');
}

beforeAll(async () => {
  srv = await startServer();
  a = api(srv);
  const token = await a.post('/api/v1/tokens', { kind: 'admin', name: 'reviewer' });
  reviewerId = token.body.id;
  b = api({ url: srv.url, adminToken: token.body.token });
  await a.post('/api/v1/flags', { key: 'checkout', kind: 'boolean' });
  await a.post('/api/v1/flags', { key: 'sentinel', kind: 'boolean' });
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
  sdk.on('change', (keys) => changed.push(...keys));
  await sdk.ready();
});
afterAll(async () => {
  await sdk?.close();
  await srv?.close();
});

describe('change requests', () => {
  it('PATCH turns approval on (audited, shown by GET) and refuses bad input naming the field', async () => {
    const versionBefore = srv.app.snapshots.version('production');
    const on = await a.patch('/api/v1/environments/production', { requireApproval: true });
    expect(on.status).toBe(200);
    expect(on.body).toMatchObject({ key: 'production', requireApproval: true });
    expect((await a.get('/api/v1/environments/production')).body.requireApproval).toBe(true);
    expect((await a.get('/api/v1/environments/staging')).body.requireApproval).toBe(false);
    expect(srv.app.snapshots.version('production')).toBe(versionBefore);
    const audit = await a.get('/api/v1/audit?environment=production');
    expect(audit.body.entries[0]).toMatchObject({
      action: 'environment.update',
      before: { requireApproval: false },
      after: { requireApproval: true },
    });
    const bad = await a.patch('/api/v1/environments/production', { requireApproval: 'yes' });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(bad.body.errors[0].path).toBe('/requireApproval');
    expect((await a.patch('/api/v1/environments/production', {})).status).toBe(400);
    expect((await a.patch('/api/v1/environments/nope', { requireApproval: true })).status).toBe(404);
    expect((await a.get('/api/v1/environments/production')).body.requireApproval).toBe(true);
  });

  it('a PUT answers 202 with a pending request, changes nothing, and the SDK sees nothing', async () => {
    const versionBefore = srv.app.snapshots.version('production');
    const seen = changed.length;
    const held = await a.put(path('checkout'), { ...ON, reason: 'launch' });
    expect(held.status).toBe(202);
    expect(held.headers.get('location')).toBe(`/api/v1/change-requests/${held.body.id}`);
    expect(held.body).toMatchObject({
      status: 'pending',
      flag: 'checkout',
      environment: 'production',
      baseVersion: 1,
      state: ON,
      reason: 'launch',
      author: { tokenId: 'configured-admin' },
      reviewer: null,
      currentVersion: 1,
    });
    // A new boolean flag is off and falls through to `on`: turning it on is the whole difference.
    expect(held.body.diff).toEqual([{ op: 'replace', path: '/enabled', before: false, after: true }]);
    // Nothing changed: the state, the environment version, and what the SDK serves.
    const state = await a.get(path('checkout'));
    expect(state.body).toMatchObject({ version: 1, enabled: false });
    expect(srv.app.snapshots.version('production')).toBe(versionBefore);
    // A change that does go through reaches the SDK after the PUT; it was told of nothing else in between.
    await sentinelRoundTrip();
    expect(changed.slice(seen)).toEqual(['sentinel']);
    expect(sdk.variation('checkout', { key: 'u' }, true)).toBe(false);
    // Audited as a request, not as a state change.
    const audit = await a.get('/api/v1/audit?environment=production');
    expect(audit.body.entries.map((e: { action: string }) => e.action)).toContain('change-request.create');
    expect((await a.get('/api/v1/audit?flag=checkout&environment=production')).body.entries.map((e: { action: string }) => e.action)).not.toContain(
      'flag-state.update',
    );
    // Listed and readable.
    expect(
      (await a.get('/api/v1/change-requests?environment=production&status=pending')).body.changeRequests.map((r: { id: string }) => r.id),
    ).toEqual([held.body.id]);
    expect((await a.get('/api/v1/change-requests?environment=staging')).body.changeRequests).toEqual([]);
    expect((await a.get(`/api/v1/change-requests/${held.body.id}`)).body).toMatchObject({ id: held.body.id, status: 'pending' });
  });

  it('bad input is still a 400 and a stale If-Match a 412, and neither creates a request', async () => {
    const before = (await requests()).length;
    const bad = await a.put(path('checkout'), { ...ON, fallthrough: { variant: 'nope' } });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].path).toBe('/fallthrough/variant');
    const stale = await a.put(path('checkout'), ON, { headers: { 'if-match': '"v7"' } });
    expect(stale.status).toBe(412);
    expect((await requests()).length).toBe(before);
  });

  it('the author cannot approve; apply needs an approval; another admin approves; apply streams to the SDK', async () => {
    const [pending] = (await a.get('/api/v1/change-requests?status=pending&flag=checkout')).body.changeRequests;
    const own = await a.post(`/api/v1/change-requests/${pending.id}/approve`);
    expect(own.status).toBe(403);
    expect(own.body.type).toMatch(/forbidden$/);
    expect((await a.get(`/api/v1/change-requests/${pending.id}`)).body.status).toBe('pending');
    const early = await a.post(`/api/v1/change-requests/${pending.id}/apply`);
    expect(early.status).toBe(409);
    expect((await a.get(path('checkout'))).body.version).toBe(1);

    const approved = await b.post(`/api/v1/change-requests/${pending.id}/approve`, { reason: 'looks right' });
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ status: 'approved', reviewer: { tokenId: reviewerId, name: 'reviewer' }, reviewReason: 'looks right' });
    expect((await b.post(`/api/v1/change-requests/${pending.id}/approve`)).status).toBe(409);

    const seen = changed.length;
    const applied = await a.post(`/api/v1/change-requests/${pending.id}/apply`);
    expect(applied.status).toBe(200);
    expect(applied.body.changeRequest).toMatchObject({ id: pending.id, status: 'applied', diff: null, currentVersion: null });
    expect(applied.body.state).toMatchObject({ ...ON, version: 2 });
    expect(applied.body.state.environmentVersion).toBe(srv.app.snapshots.version('production'));
    await until(() => changed.slice(seen).includes('checkout'), 'the SDK applies the change request');
    expect(sdk.variation('checkout', { key: 'u' }, false)).toBe(true);
    expect((await a.post(`/api/v1/change-requests/${pending.id}/apply`)).status).toBe(409);

    const actions = (await a.get('/api/v1/audit?environment=production')).body.entries.map((e: { action: string }) => e.action);
    expect(actions.slice(0, 3)).toEqual(['change-request.apply', 'flag-state.update', 'change-request.approve']);
  });

  it('apply after the flag moved answers 409 with the diff, changes nothing, and the request stays approved', async () => {
    const held = await a.put(path('checkout'), { ...ON, fallthrough: { variant: 'off' } });
    expect(held.status).toBe(202);
    expect(held.body.baseVersion).toBe(2);
    await b.post(`/api/v1/change-requests/${held.body.id}/approve`);
    // The flag moves on (a kill is never held).
    const killed = await a.post(`${path('checkout')}/kill`, { reason: 'incident' });
    expect(killed.status).toBe(200);
    expect(killed.body).toMatchObject({ changed: true, version: 3 });
    const envVersion = srv.app.snapshots.version('production');

    const moved = await a.post(`/api/v1/change-requests/${held.body.id}/apply`);
    expect(moved.status).toBe(409);
    expect(moved.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(moved.body).toMatchObject({ baseVersion: 2, currentVersion: 3 });
    expect(moved.body.diff).toEqual([
      { op: 'replace', path: '/enabled', before: false, after: true },
      { op: 'replace', path: '/fallthrough/variant', before: 'on', after: 'off' },
    ]);
    expect((await a.get(path('checkout'))).body).toMatchObject({ version: 3, enabled: false });
    expect(srv.app.snapshots.version('production')).toBe(envVersion);
    const after = (await a.get(`/api/v1/change-requests/${held.body.id}`)).body;
    expect(after).toMatchObject({ status: 'approved', baseVersion: 2, currentVersion: 3 });
    expect(after.diff).toEqual(moved.body.diff);
    // Its author may withdraw it; a closed request can be neither approved nor applied.
    expect((await a.post(`/api/v1/change-requests/${held.body.id}/reject`, { reason: 'stale' })).body).toMatchObject({
      status: 'rejected',
      reviewReason: 'stale',
      diff: null,
    });
    expect((await b.post(`/api/v1/change-requests/${held.body.id}/approve`)).status).toBe(409);
    expect((await a.post(`/api/v1/change-requests/${held.body.id}/apply`)).status).toBe(409);
    expect((await a.get('/api/v1/change-requests/no-such-request')).status).toBe(404);
    expect((await a.post('/api/v1/change-requests/no-such-request/approve')).status).toBe(404);
  });

  it('kill, revive, kill-all and revive-all go straight through with approval on', async () => {
    const before = (await requests()).length;
    const watch = async (write: () => Promise<{ status: number }>, flag: string, expected: boolean) => {
      const seen = changed.length;
      expect((await write()).status).toBe(200);
      await until(() => changed.slice(seen).includes(flag), `the SDK applies ${flag}`);
      expect(sdk.variation(flag, { key: 'u' }, !expected)).toBe(expected);
    };
    await watch(() => a.post(`${path('checkout')}/revive`), 'checkout', true);
    await watch(() => a.post(`${path('checkout')}/kill`, { reason: 'again' }), 'checkout', false);
    await watch(() => a.post(`${path('checkout')}/revive`), 'checkout', true);
    await watch(() => a.post('/api/v1/environments/production/kill-all', { reason: 'panic' }), 'checkout', false);
    await watch(() => a.post('/api/v1/environments/production/revive-all'), 'checkout', true);
    expect((await requests()).length).toBe(before);
  });

  it('turning approval off makes PUTs direct again', async () => {
    expect((await a.patch('/api/v1/environments/production', { requireApproval: false })).body.requireApproval).toBe(false);
    const seen = changed.length;
    const put = await a.put(path('checkout'), { ...ON, fallthrough: { variant: 'off' } });
    expect(put.status).toBe(200);
    expect(put.body.fallthrough).toEqual({ variant: 'off' });
    await until(() => changed.slice(seen).includes('checkout'), 'the SDK applies the direct PUT');
    expect(sdk.variation('checkout', { key: 'u' }, true)).toBe(false);
  });
});
