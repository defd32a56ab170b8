/**
 * Scheduled changes on replicas (CONTRACT §9, §11): two server processes on one PostgreSQL. Schedules created on
 * either replica run exactly once (only the `schedules` duty's owner runs them, every run is fenced and re-reads the
 * row), and when a replica dies mid-way the other takes the duty over and runs the rest, still once each.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { call, startReplica, until } from '../helpers/replicas.js';
import type { ServerProcess } from '../stream/server-process.js';

let db: TestDatabase;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await db?.drop();
});

async function replica(host: string): Promise<ServerProcess> {
  const r = await startReplica(db.url, host, { AVIARY_DB_TIMEOUT_MS: '2000' });
  cleanups.push(() => (r.child.exitCode === null ? r.crash() : undefined));
  return r;
}

describe('scheduled changes on two replicas', () => {
  it('every schedule runs exactly once, across a replica crash', async () => {
    const [a, b] = await Promise.all([replica('127.0.0.2'), replica('127.0.0.3')]);
    const flags = ['s-0', 's-1', 's-2', 's-3'];
    for (const key of flags) {
      expect((await call(a.url, 'POST', '/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
      expect((await call(a.url, 'POST', `/api/v1/flags/${key}/environments/production/revive`, {})).status).toBe(200);
    }
    // Two waves: one before the crash, one after it (due while only B is alive).
    const start = Date.now() + 1500;
    const ids: Array<{ id: string; flag: string }> = [];
    for (const [i, key] of flags.entries()) {
      for (const [wave, action] of (['kill', 'revive'] as const).entries()) {
        const on = (i + wave) % 2 === 0 ? a : b;
        const res = await call(on.url, 'POST', `/api/v1/flags/${key}/environments/production/schedules`, {
          at: start + wave * 3000 + i * 50,
          action,
        });
        expect(res.status).toBe(201);
        ids.push({ id: res.body.id, flag: key });
      }
    }
    const statusOf = async (base: string, s: { id: string; flag: string }) =>
      (await call(base, 'GET', `/api/v1/flags/${s.flag}/environments/production/schedules/${s.id}`)).body.status as string;
    // The first wave runs; then A dies (SIGKILL) whether or not it held the duty.
    await until(
      async () => (await Promise.all(ids.filter((_, n) => n % 2 === 0).map((s) => statusOf(b.url, s)))).every((x) => x === 'done'),
      'wave 1 done',
      10_000,
    );
    await a.crash();
    await until(async () => (await Promise.all(ids.map((s) => statusOf(b.url, s)))).every((x) => x === 'done'), 'wave 2 done on B', 20_000);
    for (const key of flags) {
      const entries = (await call(b.url, 'GET', `/api/v1/audit?flag=${key}&environment=production&limit=100`)).body.entries as Array<{
        action: string;
        actor: { name: string };
      }>;
      const byActor = (action: string) => entries.filter((e) => e.action === action && e.actor.name.startsWith('schedule:')).map((e) => e.actor.name);
      const mine = ids.filter((s) => s.flag === key).map((s) => `schedule:${s.id}`);
      expect(byActor('schedule.run').sort()).toEqual([...mine].sort());
      expect([...byActor('flag.kill'), ...byActor('flag.revive')].sort()).toEqual([...mine].sort());
      expect((await call(b.url, 'GET', `/api/v1/flags/${key}/environments/production`)).body.enabled).toBe(true);
    }
  }, 60_000);
});
