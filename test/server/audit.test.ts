import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
let a: ReturnType<typeof api>;
let clock = Date.parse('2026-01-01T00:00:00Z');
beforeAll(async () => {
  srv = await startServer({ now: () => clock });
  a = api(srv);
});
afterAll(async () => {
  await srv.close();
});

describe('audit log', () => {
  it('records who did what with before/after, filters by flag, environment and time, and paginates by cursor', async () => {
    await a.post('/api/v1/flags', { key: 'audited', kind: 'boolean' });
    await a.post('/api/v1/flags', { key: 'other', kind: 'boolean' });
    const t0 = clock;
    for (let i = 0; i < 5; i++) {
      clock += 60_000;
      await a.post(`/api/v1/flags/audited/environments/production/${i % 2 === 0 ? 'revive' : 'kill'}`, { reason: `step ${i}` });
    }
    await a.post('/api/v1/flags/other/environments/staging/revive');

    const all = await a.get('/api/v1/audit?flag=audited');
    expect(all.body.entries.map((e: { action: string }) => e.action)).toEqual([
      'flag.revive',
      'flag.kill',
      'flag.revive',
      'flag.kill',
      'flag.revive',
      'flag.create',
    ]);
    expect(all.body.entries[0]).toMatchObject({
      actor: { tokenId: 'configured-admin', name: 'AVIARY_ADMIN_TOKEN' },
      resourceType: 'flag',
      resourceKey: 'audited',
      environment: 'production',
      reason: 'step 4',
      before: { enabled: false },
      after: { enabled: true },
      at: new Date(t0 + 5 * 60_000).toISOString(),
    });
    const staging = await a.get('/api/v1/audit?environment=staging&resourceType=flag');
    expect(staging.body.entries.map((e: { resourceKey: string }) => e.resourceKey)).toEqual(['other']);

    const window = await a.get(`/api/v1/audit?flag=audited&from=${t0 + 2 * 60_000}&to=${new Date(t0 + 4 * 60_000).toISOString()}`);
    expect(window.body.entries.map((e: { reason: string }) => e.reason)).toEqual(['step 2', 'step 1']);

    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { entries: { id: number }[]; nextCursor: string | null } } = await a.get(
        `/api/v1/audit?flag=audited&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(page.body.entries.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.entries.map((e) => e.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(all.body.entries.map((e: { id: number }) => e.id));
  });

  it('rejects bad filters with the query path', async () => {
    const res = await a.get('/api/v1/audit?from=yesterday&limit=0&cursor=zzz');
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([
      { path: '/query/from', message: 'must be an RFC 3339 date-time or epoch milliseconds' },
      { path: '/query/limit', message: 'must be >= 1' },
    ]);
    // The cursor's meaning is checked once its form is right.
    const cursor = await a.get('/api/v1/audit?cursor=zzz');
    expect(cursor.status).toBe(400);
    expect(cursor.body.errors).toEqual([{ path: '/query/cursor', message: 'is not a cursor from a previous page' }]);
  });

  it('search finds entries whose key contains the text, ignoring case, with LIKE wildcards taken literally', async () => {
    for (const key of ['new-checkout', 'checkout-v2', 'check_out', 'pricing'])
      expect((await a.post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
    const keys = async (q: string) =>
      new Set(
        ((await a.get(`/api/v1/audit?search=${encodeURIComponent(q)}&limit=500`)).body.entries as { resourceKey: string }[]).map(
          (e) => e.resourceKey,
        ),
      );
    expect(await keys('CHECKOUT')).toEqual(new Set(['new-checkout', 'checkout-v2']));
    // `_` and `%` are characters, not wildcards.
    expect(await keys('check_')).toEqual(new Set(['check_out']));
    expect(await keys('%')).toEqual(new Set());
    expect((await a.get('/api/v1/audit?search=')).status).toBe(400);
  });
});
