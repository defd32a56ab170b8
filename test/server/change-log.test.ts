import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../server/storage/change-feed.js';
import { api, startServer, type TestServer, sqliteOf } from '../helpers/server.js';

let srv: TestServer;
let a: ReturnType<typeof api>;
beforeAll(async () => {
  srv = await startServer({ changeLogLimit: 5 });
  a = api(srv);
});
afterAll(async () => {
  await srv.close();
});

describe('change log and change feed', () => {
  it('emits one delta per committed write per affected environment, in version order, matching the change log', async () => {
    const events: ChangeEvent[] = [];
    const listener = (e: ChangeEvent) => events.push(e);
    srv.app.changeFeed.on('change', listener);
    const start = srv.app.snapshots.version('production')!;
    await a.post('/api/v1/flags', { key: 'fed', kind: 'boolean' }); // all environments
    await a.post('/api/v1/flags/fed/environments/production/revive'); // production only
    await a.patch('/api/v1/flags/fed', { description: 'new' }); // all environments
    await a.delete('/api/v1/flags/fed'); // archived → flag.delete everywhere
    srv.app.changeFeed.off('change', listener);
    const prod = events.filter((e) => e.environment === 'production');
    expect(prod.map((e) => e.delta.version)).toEqual([start + 1, start + 2, start + 3, start + 4]);
    expect(prod.map((e) => e.delta.changes[0]!.type)).toEqual(['flag.upsert', 'flag.upsert', 'flag.upsert', 'flag.delete']);
    expect(events.filter((e) => e.environment === 'staging')).toHaveLength(3);
    expect(srv.app.snapshots.changesSince('production', start)).toEqual(prod.map((e) => e.delta));
    expect(srv.app.snapshots.changesSince('production', start + 4)).toEqual([]);
  });

  it('answers null (take a snapshot) once the bounded log no longer reaches back, or for a version from the future', async () => {
    await a.post('/api/v1/flags', { key: 'churn', kind: 'boolean' });
    for (let i = 0; i < 6; i++) await a.post(`/api/v1/flags/churn/environments/production/${i % 2 ? 'kill' : 'revive'}`);
    const current = srv.app.snapshots.version('production')!;
    expect(srv.app.snapshots.changesSince('production', current - 5)).toHaveLength(5);
    expect(srv.app.snapshots.changesSince('production', current - 6)).toBeNull();
    expect(srv.app.snapshots.changesSince('production', current + 1)).toBeNull();
    expect(srv.app.snapshots.changesSince('nope', 0)).toBeNull();
    const rows = sqliteOf(srv.app).prepare("SELECT count(*) AS n FROM change_log WHERE environment = 'production'").get() as { n: number };
    expect(rows.n).toBe(5);
  });

  it('a failing subscriber neither fails the committed write nor keeps later subscribers from hearing of it', async () => {
    const boom = () => {
      throw new Error('subscriber bug');
    };
    const heard: string[] = [];
    const after = (e: ChangeEvent) => heard.push(e.environment);
    srv.app.changeFeed.on('change', boom);
    srv.app.changeFeed.on('change', after);
    try {
      const res = await a.post('/api/v1/flags', { key: 'survives', kind: 'boolean' });
      expect(res.status).toBe(201);
    } finally {
      srv.app.changeFeed.off('change', boom);
      srv.app.changeFeed.off('change', after);
    }
    expect(heard.sort()).toEqual(['development', 'production', 'staging']);
    expect((await a.get('/api/v1/flags/survives')).status).toBe(200);
  });
});

describe('writer', () => {
  it('refuses a nested write (its deltas could escape a transaction that later rolls back) and leaves nothing behind', async () => {
    const versionBefore = srv.app.snapshots.version('production');
    await expect(
      srv.app.writer.write({ tokenId: null, name: 'test' }, async () => {
        await srv.app.stores.states.kill({ tokenId: null, name: 'test' }, 'production', 'survives', 'nested');
      }),
    ).rejects.toThrow(/nested/);
    expect(srv.app.snapshots.version('production')).toBe(versionBefore);
  });
});
