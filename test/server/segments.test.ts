import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../server/storage/change-feed.js';
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

const betaTesters = {
  key: 'beta-testers',
  description: 'Opted in',
  included: ['user-7'],
  excluded: ['user-9'],
  rules: [{ conditions: [{ attribute: 'plan', op: 'in', values: ['pro'] }] }],
};

describe('segments', () => {
  it('creates, reads, replaces and lists a segment, streaming it to every environment', async () => {
    const events: ChangeEvent[] = [];
    const listener = (e: ChangeEvent) => events.push(e);
    srv.app.changeFeed.on('change', listener);
    const created = await a.post('/api/v1/segments', betaTesters);
    srv.app.changeFeed.off('change', listener);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ ...betaTesters, revision: 1 });
    expect(events.map((e) => e.environment).sort()).toEqual(['development', 'production', 'staging']);
    expect(events[0]!.delta.changes).toEqual([
      { type: 'segment.upsert', segment: expect.objectContaining({ key: 'beta-testers', included: ['user-7'] }) },
    ]);

    const got = await a.get('/api/v1/segments/beta-testers');
    expect(got.headers.get('etag')).toBe('"r1"');
    const put = await a.put('/api/v1/segments/beta-testers', { ...got.body, included: ['user-7', 'user-8'] }, { headers: { 'if-match': '"r1"' } });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ included: ['user-7', 'user-8'], revision: 2 });
    const stale = await a.put('/api/v1/segments/beta-testers', { ...got.body, included: [] }, { headers: { 'if-match': '"r1"' } });
    expect(stale.status).toBe(412);
    expect((await a.get('/api/v1/segments')).body.segments.map((s: { key: string }) => s.key)).toEqual(['beta-testers']);
    const snap = await a.get('/sdk/v1/flags', { token: srv.sdkKeys.production });
    expect(snap.body.segments).toEqual([expect.objectContaining({ key: 'beta-testers', included: ['user-7', 'user-8'] })]);
  });

  it('refuses invalid segments with the field path and stores nothing', async () => {
    const bad = await a.post('/api/v1/segments', { key: 'bad', rules: [{ conditions: [{ segment: 'beta-testers' }] }] });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].path).toMatch(/^\/rules\/0\/conditions\/0/);
    const badKey = await a.put('/api/v1/segments/other', { ...betaTesters });
    expect(badKey.status).toBe(400);
    expect(badKey.body.errors).toContainEqual({ path: '/key', message: expect.any(String) });
    expect((await a.get('/api/v1/segments/bad')).status).toBe(404);
    expect((await a.get('/api/v1/segments/other')).status).toBe(404);
  });

  it('a PUT must carry the whole segment: {} is refused and empties nothing', async () => {
    await a.post('/api/v1/segments', { key: 'keep-me', included: ['user-1'], rules: [] });
    const audit = (await a.get('/api/v1/audit?limit=1')).body.entries[0].id;
    const empty = await a.put('/api/v1/segments/keep-me', {});
    expect(empty.status).toBe(400);
    expect(empty.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['/excluded', '/included', '/rules']);
    const partial = await a.put('/api/v1/segments/keep-me', { included: [] });
    expect(partial.status).toBe(400);
    expect((await a.get('/api/v1/segments/keep-me')).body).toMatchObject({ included: ['user-1'], revision: 1 });
    expect((await a.get('/api/v1/audit?limit=1')).body.entries[0].id).toBe(audit);
    // Emptying on purpose says so.
    const emptied = await a.put('/api/v1/segments/keep-me', { included: [], excluded: [], rules: [] });
    expect(emptied.status).toBe(200);
    expect(emptied.body).toMatchObject({ included: [], revision: 2 });
  });

  it('evaluates flags that use the segment on the server', async () => {
    await a.post('/api/v1/flags', { key: 'beta-ui', kind: 'boolean' });
    await a.put('/api/v1/flags/beta-ui/environments/production', {
      enabled: true,
      offVariant: 'off',
      rules: [{ id: 'beta', conditions: [{ segment: 'beta-testers' }], serve: { variant: 'on' } }],
      fallthrough: { variant: 'off' },
    });
    const sdk = srv.sdkKeys.production;
    const ev = async (ctx: object) => (await a.post('/sdk/v1/evaluate', { context: ctx, flags: ['beta-ui'] }, { token: sdk })).body.flags['beta-ui'];
    expect(await ev({ key: 'user-8' })).toMatchObject({ value: true, reason: { kind: 'RULE_MATCH', ruleId: 'beta' } });
    expect(await ev({ key: 'user-1', plan: 'pro' })).toMatchObject({ value: true });
    expect(await ev({ key: 'user-9', plan: 'pro' })).toMatchObject({ value: false, reason: { kind: 'FALLTHROUGH' } });
    // a segment change reaches server-side evaluation through the change feed
    await a.put('/api/v1/segments/beta-testers', { ...betaTesters, included: [] });
    expect(await ev({ key: 'user-8' })).toMatchObject({ value: false });
  });

  it('refuses to delete a segment a flag uses, naming the flag; deletes it once unused', async () => {
    const refused = await a.delete('/api/v1/segments/beta-testers');
    expect(refused.status).toBe(409);
    expect(refused.body.type).toBe('https://aviary.dev/problems/in-use');
    expect(refused.body.flags).toEqual(['beta-ui']);
    expect(refused.body.detail).toContain('beta-ui');
    expect((await a.get('/api/v1/segments/beta-testers')).status).toBe(200);
    await a.put('/api/v1/flags/beta-ui/environments/production', { enabled: true, offVariant: 'off', fallthrough: { variant: 'off' } });
    const deleted = await a.delete('/api/v1/segments/beta-testers');
    expect(deleted.status).toBe(204);
    expect((await a.get('/api/v1/segments/beta-testers')).status).toBe(404);
    const audit = await a.get('/api/v1/audit?resourceType=segment&action=segment.delete');
    expect(audit.body.entries[0]).toMatchObject({
      resourceKey: 'beta-testers',
      before: expect.objectContaining({ key: 'beta-testers' }),
      after: null,
    });
  });
});
