/**
 * Scheduled changes end to end (CONTRACT §11): the real server on 127.0.0.1, real SDK clients, the real runner.
 */
import { createClient, type AviaryClient } from '@aviary/sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { apiTimeMs } from '../helpers/time.js';

let srv: TestServer;
let a: ReturnType<typeof api>;
const clients: AviaryClient[] = [];

beforeAll(async () => {
  srv = await startServer();
  a = api(srv);
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await srv?.close();
});

async function client(s: TestServer = srv): Promise<AviaryClient> {
  const c = createClient({ baseUrl: s.url, sdkKey: s.sdkKeys.production, flushIntervalMs: 0 });
  clients.push(c);
  await c.ready();
  return c;
}

async function until<T>(fn: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out; last value ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const base = (key: string) => `/api/v1/flags/${key}/environments/production`;

async function flagOn(key: string): Promise<void> {
  expect((await a.post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
  expect((await a.post(`${base(key)}/revive`)).status).toBe(200);
}

describe('scheduled changes', () => {
  it('a scheduled kill fires within a second of its time, a connected SDK switches, audited as the schedule', async () => {
    await flagOn('sched-kill');
    const c = await client();
    expect(c.variation('sched-kill', { key: 'u' }, false)).toBe(true);
    const at = Date.now() + 1500;
    const created = await a.post(`${base('sched-kill')}/schedules`, { at: new Date(at).toISOString(), action: 'kill', reason: 'end of promo' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      at: new Date(at).toISOString(),
      action: 'kill',
      status: 'pending',
      flag: 'sched-kill',
      environment: 'production',
    });
    expect(typeof created.body.id).toBe('string');
    // Not before its time.
    await new Promise((r) => setTimeout(r, 700));
    expect(c.variation('sched-kill', { key: 'u' }, false)).toBe(true);
    await until(
      () => c.variation('sched-kill', { key: 'u' }, false),
      (v) => v === false,
    );
    const switchedAt = Date.now();
    expect(switchedAt - at).toBeLessThan(1000);
    const got = await a.get(`${base('sched-kill')}/schedules/${created.body.id}`);
    expect(got.body).toMatchObject({ status: 'done', error: null });
    expect(apiTimeMs(got.body.ranAt)).toBeGreaterThanOrEqual(at);
    const state = (await a.get(base('sched-kill'))).body;
    expect(state).toMatchObject({ enabled: false, killReason: 'end of promo' });
    const audit = (await a.get('/api/v1/audit?flag=sched-kill&environment=production')).body.entries;
    const kill = audit.find((e: { action: string }) => e.action === 'flag.kill');
    expect(kill.actor).toEqual({ tokenId: null, name: `schedule:${created.body.id}`, kind: 'schedule', subject: null, email: null });
    expect(kill.reason).toBe('end of promo');
    const run = audit.find((e: { action: string }) => e.action === 'schedule.run');
    expect(run.after).toMatchObject({ status: 'done', changed: true, late: false });
    expect(audit.map((e: { action: string }) => e.action)).toContain('schedule.create');
  });

  it('a cancelled schedule never fires; cancelling twice is a conflict; the list shows it cancelled', async () => {
    await flagOn('sched-cancel');
    const c = await client();
    const at = Date.now() + 800;
    const created = await a.post(`${base('sched-cancel')}/schedules`, { at, action: 'kill' });
    expect(created.status).toBe(201);
    const cancelled = await a.delete(`${base('sched-cancel')}/schedules/${created.body.id}`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ id: created.body.id, status: 'cancelled', ranAt: null });
    const again = await a.delete(`${base('sched-cancel')}/schedules/${created.body.id}`);
    expect(again.status).toBe(409);
    expect(again.headers.get('content-type')).toContain('application/problem+json');
    await new Promise((r) => setTimeout(r, 2000));
    expect(c.variation('sched-cancel', { key: 'u' }, false)).toBe(true);
    expect((await a.get(base('sched-cancel'))).body.enabled).toBe(true);
    const list = await a.get(`${base('sched-cancel')}/schedules`);
    expect(list.body.schedules.map((s: { id: string; status: string }) => [s.id, s.status])).toEqual([[created.body.id, 'cancelled']]);
    expect((await a.get(`${base('sched-cancel')}/schedules?status=pending`)).body.schedules).toEqual([]);
    const actions = (await a.get('/api/v1/audit?flag=sched-cancel&environment=production')).body.entries.map((e: { action: string }) => e.action);
    expect(actions).toContain('schedule.cancel');
    expect(actions).not.toContain('flag.kill');
  });

  it('a state schedule writes the whole state; one that no longer validates ends failed with the reason and changes nothing', async () => {
    expect(
      (
        await a.post('/api/v1/flags', {
          key: 'sched-state',
          kind: 'string',
          variants: [
            { key: 'a', value: 'A' },
            { key: 'b', value: 'B' },
          ],
        })
      ).status,
    ).toBe(201);
    await a.post(`${base('sched-state')}/revive`);
    const c = await client();
    expect(
      (await a.post('/api/v1/segments', { key: 'sched-beta', rules: [{ conditions: [{ attribute: 'beta', op: 'in', values: [true] }] }] })).status,
    ).toBe(201);
    const goodState = { enabled: true, offVariant: 'a', targets: [], rules: [], fallthrough: { variant: 'b' } };
    const good = await a.post(`${base('sched-state')}/schedules`, { at: Date.now() + 300, action: 'state', state: goodState });
    expect(good.status).toBe(201);
    await until(
      () => c.variation('sched-state', { key: 'u' }, 'none'),
      (v) => v === 'B',
    );
    expect((await a.get(`${base('sched-state')}/schedules/${good.body.id}`)).body.status).toBe('done');

    // Refers to a segment that is deleted before the schedule runs.
    const badState = {
      enabled: true,
      offVariant: 'a',
      rules: [{ id: 'beta', conditions: [{ segment: 'sched-beta' }], serve: { variant: 'a' } }],
      fallthrough: { variant: 'a' },
    };
    const bad = await a.post(`${base('sched-state')}/schedules`, { at: Date.now() + 1000, action: 'state', state: badState, reason: 'beta' });
    expect(bad.status).toBe(201);
    expect((await a.delete('/api/v1/segments/sched-beta')).status).toBe(204);
    const before = (await a.get(base('sched-state'))).body;
    const failed = await until(
      async () => (await a.get(`${base('sched-state')}/schedules/${bad.body.id}`)).body,
      (s) => s.status !== 'pending',
    );
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/sched-beta/);
    expect(failed.ranAt).not.toBeNull();
    const after = (await a.get(base('sched-state'))).body;
    expect(after.version).toBe(before.version);
    expect(c.variation('sched-state', { key: 'u' }, 'none')).toBe('B');
    const fail = (await a.get('/api/v1/audit?flag=sched-state&environment=production')).body.entries.find(
      (e: { action: string }) => e.action === 'schedule.fail',
    );
    expect(fail).toMatchObject({ actor: { tokenId: null, name: `schedule:${bad.body.id}` }, after: { status: 'failed' } });
    expect(fail.reason).toMatch(/sched-beta/);
  });

  it('a schedule on an archived flag fails visibly', async () => {
    await flagOn('sched-archived');
    const s = await a.post(`${base('sched-archived')}/schedules`, { at: Date.now() + 500, action: 'kill' });
    expect(s.status).toBe(201);
    expect((await a.delete('/api/v1/flags/sched-archived')).status).toBeLessThan(300);
    const failed = await until(
      async () => (await a.get(`${base('sched-archived')}/schedules/${s.body.id}`)).body,
      (x) => x.status !== 'pending',
    );
    expect(failed).toMatchObject({ status: 'failed' });
    expect(failed.error).toMatch(/archived/);
  });

  it('approval is not skipped by scheduling: a state schedule is refused where approval is required, and one made before fails; kills still run', async () => {
    await flagOn('sched-approval');
    const state = { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'off' } };
    const early = await a.post(`${base('sched-approval')}/schedules`, { at: Date.now() + 800, action: 'state', state });
    expect(early.status).toBe(201);
    expect((await a.patch('/api/v1/environments/production', { requireApproval: true })).status).toBe(200);
    try {
      const refused = await a.post(`${base('sched-approval')}/schedules`, { at: Date.now() + 500, action: 'state', state });
      expect(refused.status).toBe(409);
      expect(refused.body.detail).toMatch(/requires approval/);
      const kill = await a.post(`${base('sched-approval')}/schedules`, { at: Date.now() + 300, action: 'kill' });
      expect(kill.status).toBe(201);
      const failed = await until(
        async () => (await a.get(`${base('sched-approval')}/schedules/${early.body.id}`)).body,
        (x) => x.status !== 'pending',
      );
      expect(failed).toMatchObject({ status: 'failed' });
      expect(failed.error).toMatch(/requires approval/);
      const killed = await until(
        async () => (await a.get(`${base('sched-approval')}/schedules/${kill.body.id}`)).body,
        (x) => x.status !== 'pending',
      );
      expect(killed.status).toBe('done');
      expect((await a.get(base('sched-approval'))).body.enabled).toBe(false);
    } finally {
      await a.patch('/api/v1/environments/production', { requireApproval: false });
    }
  });

  it('bad input is a problem+json naming the field, and creates nothing', async () => {
    await flagOn('sched-bad');
    const cases: Array<[unknown, string, number]> = [
      [{ at: 'tomorrow', action: 'kill' }, '/at', 400],
      [{ at: Date.now() + 60_000, action: 'explode' }, '/action', 400],
      [{ action: 'kill' }, 'at', 400],
      [{ at: Date.now() - 3_600_000, action: 'kill' }, '/at', 400],
      [{ at: Date.now() + 60_000, action: 'state' }, '/state', 400],
      [{ at: Date.now() + 60_000, action: 'kill', state: { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } } }, '/state', 400],
      [
        { at: Date.now() + 60_000, action: 'state', state: { enabled: true, offVariant: 'nope', fallthrough: { variant: 'on' } } },
        '/state/offVariant',
        400,
      ],
      [{ at: Date.now() + 60_000, action: 'kill', extra: 1 }, 'extra', 400],
    ];
    for (const [body, field, status] of cases) {
      const res = await a.post(`${base('sched-bad')}/schedules`, body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(JSON.stringify(res.body), JSON.stringify(body)).toContain(field);
    }
    expect((await a.post('/api/v1/flags/no-such-flag/environments/production/schedules', { at: Date.now() + 60_000, action: 'kill' })).status).toBe(
      404,
    );
    expect((await a.post('/api/v1/flags/sched-bad/environments/nowhere/schedules', { at: Date.now() + 60_000, action: 'kill' })).status).toBe(404);
    expect((await a.get('/api/v1/flags/sched-bad/environments/production/schedules/nope')).status).toBe(404);
    expect((await a.get(`${base('sched-bad')}/schedules`)).body.schedules).toEqual([]);
    const actions = (await a.get('/api/v1/audit?flag=sched-bad')).body.entries.map((e: { action: string }) => e.action);
    expect(actions).not.toContain('schedule.create');
  });
});

describe('scheduled changes across a restart', () => {
  it('a schedule due while the server was down runs at the next boot, exactly once, audited as late', async () => {
    const first = await startServer();
    let current = first;
    try {
      const fa = api(first);
      await fa.post('/api/v1/flags', { key: 'sched-down', kind: 'boolean' });
      await fa.post('/api/v1/flags/sched-down/environments/production/revive');
      const at = Date.now() + 1000;
      const s = await fa.post('/api/v1/flags/sched-down/environments/production/schedules', { at, action: 'kill', reason: 'overnight' });
      expect(s.status).toBe(201);
      await first.close({ keepData: true });
      // Down past its time (and past the "late" threshold).
      await new Promise((r) => setTimeout(r, at - Date.now() + 6000));
      current = await startServer({ dbPath: first.dbPath });
      const ca = api(current);
      const c = await client(current);
      await until(
        () => c.variation('sched-down', { key: 'u' }, true),
        (v) => v === false,
        3000,
      );
      const done = (await ca.get(`/api/v1/flags/sched-down/environments/production/schedules/${s.body.id}`)).body;
      expect(done.status).toBe('done');
      // Once: a second restart does not run it again.
      await current.close({ keepData: true });
      current = await startServer({ dbPath: first.dbPath });
      await new Promise((r) => setTimeout(r, 1500));
      const entries = (await api(current).get('/api/v1/audit?flag=sched-down&environment=production')).body.entries;
      const runs = entries.filter((e: { action: string }) => e.action === 'schedule.run');
      expect(runs).toHaveLength(1);
      expect(runs[0].after).toMatchObject({ late: true });
      expect(runs[0].after.lateMs).toBeGreaterThan(5000);
      expect(runs[0].reason).toMatch(/late by/);
      expect(entries.filter((e: { action: string }) => e.action === 'flag.kill')).toHaveLength(1);
    } finally {
      await Promise.all(clients.splice(0).map((c) => c.close()));
      await current.close();
    }
  }, 30_000);
});
