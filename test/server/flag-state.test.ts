import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../server/storage/change-feed.js';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { apiTimeMs } from '../helpers/time.js';

let srv: TestServer;
let a: ReturnType<typeof api>;
beforeAll(async () => {
  srv = await startServer();
  a = api(srv);
});
afterAll(async () => {
  await srv.close();
});

const rolloutState = {
  enabled: true,
  offVariant: 'off',
  targets: [{ variant: 'on', keys: ['user-1'] }],
  rules: [{ id: 'staff', conditions: [{ attribute: 'email', op: 'endsWith', values: ['@acme.com'] }], serve: { variant: 'on' } }],
  fallthrough: {
    rollout: {
      weights: [
        { variant: 'on', percent: 5 },
        { variant: 'off', percent: 95 },
      ],
    },
  },
};

function collect(envName: string) {
  const events: ChangeEvent[] = [];
  const listener = (e: ChangeEvent) => e.environment === envName && events.push(e);
  srv.app.changeFeed.on('change', listener);
  return { events, stop: () => srv.app.changeFeed.off('change', listener) };
}

describe('flag state per environment', () => {
  it('stores a valid state, bumps versions, streams a flag.upsert and audits before/after', async () => {
    await a.post('/api/v1/flags', { key: 'checkout', kind: 'boolean' });
    const feed = collect('production');
    const get = await a.get('/api/v1/flags/checkout/environments/production');
    expect(get.headers.get('etag')).toBe('"v1"');
    const put = await a.put(
      '/api/v1/flags/checkout/environments/production',
      { ...rolloutState, reason: 'launch 5%' },
      { headers: { 'if-match': '"v1"' } },
    );
    feed.stop();
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ ...rolloutState, version: 2 });
    expect(put.headers.get('etag')).toBe('"v2"');
    expect(feed.events).toHaveLength(1);
    expect(feed.events[0]!.delta.version).toBe(put.body.environmentVersion);
    expect(feed.events[0]!.delta.changes).toEqual([
      { type: 'flag.upsert', flag: expect.objectContaining({ key: 'checkout', state: expect.objectContaining({ ...rolloutState, version: 2 }) }) },
    ]);
    // other environments are untouched
    expect((await a.get('/api/v1/flags/checkout/environments/staging')).body.enabled).toBe(false);
    const audit = await a.get('/api/v1/audit?flag=checkout&environment=production');
    expect(audit.body.entries[0]).toMatchObject({
      action: 'flag-state.update',
      reason: 'launch 5%',
      before: { enabled: false, version: 1 },
      after: { ...rolloutState, version: 2 },
    });
    // the change log answers the same delta for a resuming SDK
    expect(srv.app.snapshots.changesSince('production', put.body.environmentVersion - 1)).toEqual([feed.events[0]!.delta]);
  });

  it('a GET body can be PUT back unchanged (read-only members are ignored)', async () => {
    const get = await a.get('/api/v1/flags/checkout/environments/production');
    const put = await a.put('/api/v1/flags/checkout/environments/production', get.body);
    expect(put.status).toBe(200);
    expect(put.body.version).toBe(get.body.version + 1);
  });

  it('each invalid state is a 400 with the field path and leaves the stored state, versions and audit unchanged', async () => {
    const before = await a.get('/api/v1/flags/checkout/environments/production');
    const envBefore = srv.app.snapshots.version('production');
    const auditBefore = (await a.get('/api/v1/audit?limit=1')).body.entries[0].id;
    const cases: [unknown, string][] = [
      [{ ...rolloutState, offVariant: 'maybe' }, '/offVariant'],
      [{ ...rolloutState, enabled: 'yes' }, '/enabled'],
      [
        {
          ...rolloutState,
          fallthrough: {
            rollout: {
              weights: [
                { variant: 'on', percent: 60 },
                { variant: 'off', percent: 60 },
              ],
            },
          },
        },
        '/fallthrough/rollout/weights',
      ],
      [
        { ...rolloutState, rules: [{ id: 'r', conditions: [{ segment: 'no-such-segment' }], serve: { variant: 'on' } }] },
        '/rules/0/conditions/0/segment',
      ],
      [
        {
          ...rolloutState,
          rules: [{ id: 'r', conditions: [{ attribute: 'v', op: 'semverGt', values: ['not-a-version'] }], serve: { variant: 'on' } }],
        },
        '/rules/0/conditions/0/values/0',
      ],
      [{ ...rolloutState, targets: [{ variant: 'nope', keys: ['a'] }] }, '/targets/0/variant'],
    ];
    for (const [body, path] of cases) {
      const res = await a.put('/api/v1/flags/checkout/environments/production', body);
      expect(res.status, path).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(
        res.body.errors.map((e: { path: string }) => e.path).some((p: string) => p.startsWith(path)),
        JSON.stringify(res.body.errors),
      ).toBe(true);
    }
    const stale = await a.put('/api/v1/flags/checkout/environments/production', rolloutState, { headers: { 'if-match': '"v1"' } });
    expect(stale.status).toBe(412);
    const after = await a.get('/api/v1/flags/checkout/environments/production');
    expect(after.body).toEqual(before.body);
    expect(srv.app.snapshots.version('production')).toBe(envBefore);
    expect((await a.get('/api/v1/audit?limit=1')).body.entries[0].id).toBe(auditBefore);
  });

  it('404s unknown flags and environments', async () => {
    expect((await a.get('/api/v1/flags/nope/environments/production')).status).toBe(404);
    expect((await a.get('/api/v1/flags/checkout/environments/nope')).status).toBe(404);
    expect((await a.post('/api/v1/flags/checkout/environments/nope/kill')).status).toBe(404);
  });
});

describe('kill switch', () => {
  it('kill is idempotent, needs no If-Match, records the reason and answers the new environment version', async () => {
    await a.post('/api/v1/flags', { key: 'payments-v2', kind: 'boolean' });
    await a.put('/api/v1/flags/payments-v2/environments/production', { ...rolloutState, fallthrough: { variant: 'on' } });
    const feed = collect('production');
    const killing = Date.now();
    const kill = await a.post('/api/v1/flags/payments-v2/environments/production/kill', { reason: 'error spike' });
    expect(kill.status).toBe(200);
    expect(kill.body).toMatchObject({ enabled: false, changed: true, killReason: 'error spike', killedAt: kill.body.updatedAt });
    expect(apiTimeMs(kill.body.killedAt)).toBeGreaterThanOrEqual(killing);
    expect(apiTimeMs(kill.body.killedAt)).toBeLessThanOrEqual(Date.now());
    expect(kill.body.environmentVersion).toBe(srv.app.snapshots.version('production'));
    const again = await a.post('/api/v1/flags/payments-v2/environments/production/kill');
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({
      enabled: false,
      changed: false,
      version: kill.body.version,
      environmentVersion: kill.body.environmentVersion,
    });
    feed.stop();
    expect(feed.events).toHaveLength(1);
    const evaluated = await a.post('/sdk/v1/evaluate', { context: { key: 'user-1' }, flags: ['payments-v2'] }, { token: srv.sdkKeys.production });
    expect(evaluated.body.flags['payments-v2']).toMatchObject({ value: false, variant: 'off', reason: { kind: 'OFF' } });
    const audit = await a.get('/api/v1/audit?flag=payments-v2&action=flag.kill');
    expect(audit.body.entries).toHaveLength(1);
    expect(audit.body.entries[0]).toMatchObject({ reason: 'error spike', before: { enabled: true }, after: { enabled: false } });
  });

  it('revive restores enabled and clears the kill; reviving twice changes nothing', async () => {
    const revive = await a.post('/api/v1/flags/payments-v2/environments/production/revive', { reason: 'fixed' });
    expect(revive.body).toMatchObject({ enabled: true, changed: true, killedAt: null, killReason: null, fallthrough: { variant: 'on' } });
    const again = await a.post('/api/v1/flags/payments-v2/environments/production/revive');
    expect(again.body.changed).toBe(false);
  });

  it('kill works with an empty body even when a JSON content type is sent (curl in an incident)', async () => {
    const res = await fetch(`${srv.url}/api/v1/flags/payments-v2/environments/development/kill`, {
      method: 'POST',
      headers: { authorization: `Bearer ${srv.adminToken}`, 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { enabled: boolean }).enabled).toBe(false);
  });

  it('rejects a bad kill body with 400 and does not kill', async () => {
    const res = await a.post('/api/v1/flags/payments-v2/environments/production/kill', { reason: 42 });
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([{ path: '/reason', message: expect.any(String) }]);
    expect((await a.get('/api/v1/flags/payments-v2/environments/production')).body.enabled).toBe(true);
  });
});

describe('kill switches take a form body (curl -d in an incident)', () => {
  const form = (path: string, body: string, contentType = 'application/x-www-form-urlencoded') =>
    fetch(`${srv.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${srv.adminToken}`, 'content-type': contentType }, body });

  it('kill and revive read reason from a form, and audit it', async () => {
    await a.post('/api/v1/flags', { key: 'form-kill', kind: 'boolean' });
    await a.put('/api/v1/flags/form-kill/environments/production', { ...rolloutState });
    const killed = await form('/api/v1/flags/form-kill/environments/production/kill', 'reason=incident+42%3A+checkout+errors');
    expect(killed.status).toBe(200);
    expect(await killed.json()).toMatchObject({ enabled: false, changed: true, killReason: 'incident 42: checkout errors' });
    const audit = await a.get('/api/v1/audit?flag=form-kill&environment=production');
    expect(audit.body.entries[0]).toMatchObject({ action: 'flag.kill', reason: 'incident 42: checkout errors' });
    const revived = await form('/api/v1/flags/form-kill/environments/production/revive', 'reason=fixed');
    expect(await revived.json()).toMatchObject({ enabled: true, changed: true });
    // An empty form is no body, as with JSON.
    expect((await form('/api/v1/flags/form-kill/environments/production/kill', '')).status).toBe(200);
    await a.post('/api/v1/flags/form-kill/environments/production/revive');
  });

  it('kill-all reads except as repeated or comma-separated fields, and revive-all restores', async () => {
    for (const key of ['form-p1', 'form-p2', 'form-p3']) {
      await a.post('/api/v1/flags', { key, kind: 'boolean' });
      await a.put(`/api/v1/flags/${key}/environments/development`, { ...rolloutState });
    }
    const panic = await form('/api/v1/environments/development/kill-all', 'reason=panic&except=form-p1,form-p2&except=form-p3');
    expect(panic.status).toBe(200);
    const body = (await panic.json()) as { spared: string[]; killed: string[] };
    expect(body.spared.sort()).toEqual(['form-p1', 'form-p2', 'form-p3']);
    expect(body.killed).not.toContain('form-p1');
    const restore = await form('/api/v1/environments/development/revive-all', 'reason=over');
    expect(restore.status).toBe(200);
  });

  it('unknown fields, __proto__ and bad values in a form are 400s that change nothing', async () => {
    await a.post('/api/v1/flags', { key: 'form-bad', kind: 'boolean' });
    await a.put('/api/v1/flags/form-bad/environments/production', { ...rolloutState });
    for (const body of ['reason=x&color=red', '__proto__=x', 'reason=x&__proto__%5Badmin%5D=1', '{"reason":"json in a form"}']) {
      const res = await form('/api/v1/flags/form-bad/environments/production/kill', body);
      expect(res.status, body).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    expect((await form('/api/v1/environments/production/kill-all', 'except=no-such-flag')).status).toBe(400);
    expect((await a.get('/api/v1/flags/form-bad/environments/production')).body.enabled).toBe(true);
  });

  it('other write routes stay JSON-only (415 for a form)', async () => {
    const res = await fetch(`${srv.url}/api/v1/flags/form-bad/environments/production`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${srv.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'enabled=false',
    });
    expect(res.status).toBe(415);
    expect((await a.get('/api/v1/flags/form-bad/environments/production')).body.enabled).toBe(true);
  });
});

describe('panic button', () => {
  it('kill-all disables every enabled flag but the spared ones in one version, and revive-all restores each exactly', async () => {
    const env = 'staging';
    const states: Record<string, unknown> = {
      'p-one': { ...rolloutState },
      'p-two': { ...rolloutState, fallthrough: { variant: 'off' }, targets: [] },
      'p-spared': { ...rolloutState, rules: [] },
    };
    for (const [key, state] of Object.entries(states)) {
      await a.post('/api/v1/flags', { key, kind: 'boolean' });
      await a.put(`/api/v1/flags/${key}/environments/${env}`, state);
    }
    await a.post('/api/v1/flags', { key: 'p-already-off', kind: 'boolean' }); // stays disabled throughout
    const before = Object.fromEntries(
      await Promise.all(
        ['p-one', 'p-two', 'p-spared', 'p-already-off'].map(async (k) => [k, (await a.get(`/api/v1/flags/${k}/environments/${env}`)).body]),
      ),
    );
    const feed = collect(env);
    const versionBefore = srv.app.snapshots.version(env)!;
    const panic = await a.post(`/api/v1/environments/${env}/kill-all`, { reason: 'incident 42', except: ['p-spared'] });
    expect(panic.status).toBe(200);
    expect(panic.body.killed.sort()).toEqual(expect.arrayContaining(['p-one', 'p-two']));
    expect(panic.body.killed).not.toContain('p-spared');
    expect(panic.body.spared).toEqual(['p-spared']);
    expect(panic.body.environmentVersion).toBe(versionBefore + 1);
    expect(feed.events).toHaveLength(1);
    expect((await a.get(`/api/v1/flags/p-one/environments/${env}`)).body).toMatchObject({
      enabled: false,
      panicked: true,
      killReason: 'incident 42',
    });
    expect((await a.get(`/api/v1/flags/p-spared/environments/${env}`)).body.enabled).toBe(true);
    const snap = await a.post('/sdk/v1/evaluate', { context: { key: 'user-1' } }, { token: srv.sdkKeys.staging });
    expect(snap.body.flags['p-one'].reason.kind).toBe('OFF');
    expect(snap.body.flags['p-spared'].reason.kind).not.toBe('OFF');

    const restore = await a.post(`/api/v1/environments/${env}/revive-all`, { reason: 'all clear' });
    expect(restore.status).toBe(200);
    expect(restore.body.revived.sort()).toEqual(panic.body.killed.sort());
    feed.stop();
    expect(feed.events).toHaveLength(2);
    for (const key of Object.keys(before)) {
      const now = (await a.get(`/api/v1/flags/${key}/environments/${env}`)).body;
      const strip = ({ version: _v, updatedAt: _u, ...rest }: Record<string, unknown>) => rest;
      expect(strip(now), key).toEqual(strip(before[key]));
    }
    const audit = await a.get(`/api/v1/audit?environment=${env}&action=flag.revive-all`);
    expect(audit.body.entries.length).toBe(panic.body.killed.length);
    expect((await a.get(`/api/v1/audit?environment=${env}&action=environment.kill-all`)).body.entries[0]).toMatchObject({ reason: 'incident 42' });
  });

  it('a flag changed by hand during the panic is not overwritten by revive-all', async () => {
    const env = 'development';
    await a.post('/api/v1/flags', { key: 'p-manual', kind: 'boolean' });
    await a.put(`/api/v1/flags/p-manual/environments/${env}`, rolloutState);
    await a.post(`/api/v1/environments/${env}/kill-all`);
    const manual = { ...rolloutState, enabled: false, rules: [] };
    await a.put(`/api/v1/flags/p-manual/environments/${env}`, manual);
    const restore = await a.post(`/api/v1/environments/${env}/revive-all`);
    expect(restore.body.revived).not.toContain('p-manual');
    expect((await a.get(`/api/v1/flags/p-manual/environments/${env}`)).body).toMatchObject(manual);
  });

  it('rejects unknown spared flags with the index of the bad entry', async () => {
    const res = await a.post('/api/v1/environments/production/kill-all', { except: ['checkout', 'ghost'] });
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([{ path: '/except/1', message: expect.any(String) }]);
    expect((await a.get('/api/v1/flags/checkout/environments/production')).body.enabled).toBe(true);
  });
});

describe('updateFlagState (used by the canary guard)', () => {
  it('applies a mutation with audit under a system actor and streams it', async () => {
    const feed = collect('production');
    const result = await srv.app.stores.states.updateFlagState(
      'production',
      'checkout',
      (cur) => ({ state: { enabled: cur.enabled, offVariant: cur.offVariant, targets: [], rules: [], fallthrough: { variant: 'off' } } }),
      { tokenId: null, name: 'canary-guard' },
      'guard: error rate regression',
      { action: 'canary.rollback' },
    );
    feed.stop();
    expect(result.changed).toBe(true);
    expect(feed.events.map((e) => e.delta.version)).toEqual([result.environmentVersion]);
    const audit = await a.get('/api/v1/audit?flag=checkout&action=canary.rollback');
    expect(audit.body.entries[0]).toMatchObject({ actor: { tokenId: null, name: 'canary-guard' }, reason: 'guard: error rate regression' });
    await expect(
      srv.app.stores.states.updateFlagState('production', 'checkout', (cur) => ({ state: { ...cur, offVariant: 'ghost' } }), {
        tokenId: null,
        name: 'canary-guard',
      }),
    ).rejects.toThrow();
    expect((await a.get('/api/v1/flags/checkout/environments/production')).body.offVariant).toBe('off');
  });
});
