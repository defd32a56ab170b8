/**
 * Prerequisites through the admin API and to a connected SDK (CONTRACT §12): writes naming a missing flag or a
 * variant it lacks, or closing a cycle, are refused with the path of the entry and change nothing; cycles are per
 * environment; archiving a required flag, or taking away a variant a dependent requires, answers 409 naming the
 * dependents; the stored state keeps its prerequisites through kills; a killed prerequisite turns its dependent off in
 * a connected SDK within the kill's delivery (real server, real SDK, receipts).
 */
import { createClient, type AviaryClient } from '@aviary/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { nextChange, until } from '../stream/fixtures.js';

let srv: TestServer;
let a: ReturnType<typeof api>;
const clients: AviaryClient[] = [];

const state = (prerequisites: unknown[] = [], over: Record<string, unknown> = {}) => ({
  enabled: true,
  offVariant: 'off',
  ...(prerequisites.length ? { prerequisites } : {}),
  targets: [],
  rules: [],
  fallthrough: { variant: 'on' },
  ...over,
});
const put = (key: string, body: unknown, env = 'production') => a.put(`/api/v1/flags/${key}/environments/${env}`, body);
const requires = (flag: string, ...variants: string[]) => ({ flag, variants: variants.length ? variants : ['on'] });

beforeAll(async () => {
  srv = await startServer();
  a = api(srv);
  for (const key of ['parent', 'child', 'grandchild', 'loner']) expect((await a.post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
  expect(
    (await a.post('/api/v1/flags', { key: 'color', kind: 'string', variants: ['red', 'green'].map((k) => ({ key: k, value: k })) })).status,
  ).toBe(201);
  expect((await put('parent', state())).status).toBe(200);
  expect((await put('child', state([requires('parent')]))).status).toBe(200);
  expect((await put('grandchild', state([requires('child')]))).status).toBe(200);
});
afterAll(async () => {
  for (const c of clients) await c.close();
  await srv.close();
});

describe("writes are validated against the environment's flags", () => {
  it('stores and shows the prerequisites, and serves them to SDKs', async () => {
    const got = await a.get('/api/v1/flags/child/environments/production');
    expect(got.body.prerequisites).toEqual([{ flag: 'parent', variants: ['on'] }]);
    const snap = await a.get('/sdk/v1/flags', { token: srv.sdkKeys.production });
    const child = snap.body.flags.find((f: { key: string }) => f.key === 'child');
    expect(child.state.prerequisites).toEqual([{ flag: 'parent', variants: ['on'] }]);
    // A flag that requires nothing carries no prerequisites field at all.
    expect('prerequisites' in snap.body.flags.find((f: { key: string }) => f.key === 'parent').state).toBe(false);
  });

  it('refuses a cycle (400, the path of the entry and the cycle) and changes nothing', async () => {
    const before = await a.get('/api/v1/flags/parent/environments/production');
    const res = await put('parent', state([requires('grandchild')]));
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(res.body.errors).toEqual([{ path: '/prerequisites/0/flag', message: 'would create a cycle: parent → grandchild → child → parent' }]);
    expect((await a.get('/api/v1/flags/parent/environments/production')).body).toEqual(before.body);
  });

  it('refuses a flag requiring itself', async () => {
    const res = await put('loner', state([requires('loner')]));
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([{ path: '/prerequisites/0/flag', message: 'a flag cannot require itself' }]);
  });

  it('refuses a missing flag, an archived one, and a variant the flag does not have', async () => {
    const missing = await put('loner', state([requires('nope')]));
    expect(missing.status).toBe(400);
    expect(missing.body.errors).toEqual([
      { path: '/prerequisites/0/flag', message: 'unknown flag "nope" (no live flag of that key in this environment)' },
    ]);
    expect((await a.post('/api/v1/flags', { key: 'old', kind: 'boolean' })).status).toBe(201);
    expect((await a.delete('/api/v1/flags/old')).status).toBe(200);
    expect((await put('loner', state([requires('old')]))).body.errors[0].path).toBe('/prerequisites/0/flag');
    const variant = await put('loner', state([requires('color', 'red', 'blue')]));
    expect(variant.status).toBe(400);
    expect(variant.body.errors).toEqual([{ path: '/prerequisites/0/variants/1', message: '"blue" is not a variant of flag "color" (red, green)' }]);
    // The schema refuses what is not even shaped like a prerequisite.
    expect((await put('loner', state([{ flag: 'color' }]))).status).toBe(400);
  });

  it('cycles are per environment: the reverse edge is fine in another environment', async () => {
    expect((await put('parent', state([requires('grandchild')]), 'staging')).status).toBe(200);
    // …and then the original direction is the cycle there.
    const res = await put('grandchild', state([requires('parent')]), 'staging');
    expect(res.status).toBe(400);
    expect(res.body.errors[0].message).toBe('would create a cycle: grandchild → parent → grandchild');
    expect((await put('parent', state(), 'staging')).status).toBe(200);
  });

  it('kill and revive keep the prerequisites', async () => {
    expect((await a.post('/api/v1/flags/child/environments/production/kill')).status).toBe(200);
    expect((await a.get('/api/v1/flags/child/environments/production')).body).toMatchObject({ enabled: false, prerequisites: [requires('parent')] });
    expect((await a.post('/api/v1/flags/child/environments/production/revive')).status).toBe(200);
    expect((await a.get('/api/v1/flags/child/environments/production')).body).toMatchObject({ enabled: true, prerequisites: [requires('parent')] });
  });
});

describe('writes made for others keep the prerequisites', () => {
  it('a canary renders its stages into the state without dropping them', async () => {
    expect((await a.post('/api/v1/flags', { key: 'canaried', kind: 'boolean' })).status).toBe(201);
    expect((await put('canaried', state([requires('loner')], { fallthrough: { variant: 'off' } }))).status).toBe(200);
    const canary = { control: 'off', canary: 'on', stages: [{ percent: 10 }, { percent: 100 }], stageDurationSeconds: 3600 };
    expect((await a.put('/api/v1/flags/canaried/environments/production/canary', canary)).status).toBe(201);
    const after = (await a.get('/api/v1/flags/canaried/environments/production')).body;
    expect(after.fallthrough).toMatchObject({
      rollout: {
        weights: [
          { variant: 'on', percent: 10 },
          { variant: 'off', percent: 90 },
        ],
      },
    });
    expect(after.prerequisites).toEqual([requires('loner')]);
  });
});

describe('a required flag cannot go away under its dependents', () => {
  it('archiving it answers 409 naming them, and changes nothing', async () => {
    const res = await a.delete('/api/v1/flags/parent');
    expect(res.status).toBe(409);
    expect(res.body.detail).toBe('Flag "parent" is required by flag "child"; remove it from their prerequisites first.');
    expect(res.body.flags).toEqual(['child']);
    expect(res.body.usages).toEqual([{ flag: 'child', environment: 'production' }]);
    expect((await a.get('/api/v1/flags/parent')).body.archived).toBe(false);
    expect((await a.patch('/api/v1/flags/parent', { archived: true })).status).toBe(409);
  });

  it('taking away a variant a dependent requires answers 409 naming it; other variant changes pass', async () => {
    expect((await put('loner', state([requires('color', 'green')]))).status).toBe(200);
    const res = await a.patch('/api/v1/flags/color', {
      variants: [
        { key: 'red', value: 'red' },
        { key: 'blue', value: 'blue' },
      ],
    });
    expect(res.status).toBe(409);
    expect(res.body.errors).toEqual([{ path: '/variants', message: 'flag "loner" requires variant "green" in "production" (its /prerequisites/0)' }]);
    expect((await a.get('/api/v1/flags/color')).body.variants.map((v: { key: string }) => v.key)).toEqual(['red', 'green']);
    const added = await a.patch('/api/v1/flags/color', { variants: ['red', 'green', 'blue'].map((k) => ({ key: k, value: k })) });
    expect(added.status).toBe(200);
  });

  it('once no live flag requires it, it can be archived', async () => {
    expect((await put('loner', state())).status).toBe(200);
    expect((await a.delete('/api/v1/flags/color')).status).toBe(200);
  });
});

describe('evaluation on the server and in a connected SDK', () => {
  it('a killed prerequisite turns its dependents off in a connected SDK within the kill delivery', async () => {
    const c = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0, app: { name: 'prereq-test', version: '1' } });
    clients.push(c);
    await c.ready();
    expect(c.variationDetail('grandchild', { key: 'u' }, false)).toMatchObject({ value: true, reason: { kind: 'FALLTHROUGH' } });
    const changed = nextChange(c);
    const started = performance.now();
    const kill = await a.post('/api/v1/flags/parent/environments/production/kill?waitMs=5000');
    const elapsed = performance.now() - started;
    expect(kill.status).toBe(200);
    expect(kill.body.delivery).toMatchObject({ connected: 1, applied: 1, complete: true });
    // Applied (and acknowledged) by the SDK when the kill answered: the dependents are off already.
    expect(c.variationDetail('child', { key: 'u' }, true)).toEqual({
      value: false,
      variant: 'off',
      reason: { kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'parent' },
    });
    expect(c.variationDetail('grandchild', { key: 'u' }, true)).toEqual({
      value: false,
      variant: 'off',
      reason: { kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'child' },
    });
    // The change event names the dependents too, so applications listening for them hear of it.
    expect(await changed).toEqual(['child', 'grandchild', 'parent']);
    expect(elapsed).toBeLessThan(2_000);
    // The SDK counted each prerequisite evaluated on the way for its own flag, and the server took the new reason.
    await c.flush();
    const totals = async (key: string) => {
      const m = (await a.get(`/api/v1/flags/${key}/environments/production/metrics`)).body.totals;
      return Object.fromEntries(Object.entries(m).map(([variant, t]) => [variant, (t as { reasons: unknown }).reasons]));
    };
    expect(await totals('parent')).toEqual({ on: { FALLTHROUGH: 1 }, off: { OFF: 2 } });
    expect(await totals('child')).toEqual({ on: { FALLTHROUGH: 1 }, off: { PREREQUISITE_FAILED: 2 } });
    expect(await totals('grandchild')).toEqual({ on: { FALLTHROUGH: 1 }, off: { PREREQUISITE_FAILED: 1 } });
    // Server-side evaluation agrees.
    const ev = await a.post('/sdk/v1/evaluate', { context: { key: 'u' }, flags: ['child'] }, { token: srv.sdkKeys.production });
    expect(ev.body.flags.child).toEqual({ value: false, variant: 'off', reason: { kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'parent' } });
    const ofrep = await a.post('/ofrep/v1/evaluate/flags/child', { context: { targetingKey: 'u' } }, { token: srv.sdkKeys.production });
    expect(ofrep.body).toMatchObject({ value: false, variant: 'off', reason: 'PREREQUISITE_FAILED', metadata: { prerequisiteKey: 'parent' } });
    // Reviving it turns them back on.
    expect((await a.post('/api/v1/flags/parent/environments/production/revive?waitMs=5000')).status).toBe(200);
    await until(() => c.variationDetail('grandchild', { key: 'u' }, false).value === true, 'the dependents back on');
  });
});
