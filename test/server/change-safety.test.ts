/**
 * Issue 14's parts together: prerequisites travel through history and revert, change requests and schedules, and are
 * checked against the environment's flags wherever a state is proposed, not only when it is finally written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
let a: ReturnType<typeof api>;
const base = (key: string, env = 'production') => `/api/v1/flags/${key}/environments/${env}`;
const state = (extra: Record<string, unknown> = {}) => ({
  enabled: true,
  offVariant: 'off',
  targets: [],
  rules: [],
  fallthrough: { variant: 'on' },
  ...extra,
});

beforeAll(async () => {
  srv = await startServer();
  a = api(srv);
  for (const key of ['parent', 'child']) expect((await a.post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
  expect((await a.put(base('parent'), state())).status).toBe(200);
});
afterAll(async () => {
  await srv?.close();
});

describe('change safety, all parts together', () => {
  it('revert brings back a version with its prerequisites; history keeps them', async () => {
    const withPrereq = await a.put(base('child'), state({ prerequisites: [{ flag: 'parent', variants: ['on'] }] }));
    expect(withPrereq.status).toBe(200);
    const version = withPrereq.body.version as number;
    expect((await a.put(base('child'), state())).body.prerequisites).toBeUndefined();
    const history = await a.get(`${base('child')}/history`);
    expect(history.body.entries.find((e: { version: number }) => e.version === version).state.prerequisites).toEqual([
      { flag: 'parent', variants: ['on'] },
    ]);
    const reverted = await a.post(`${base('child')}/revert`, { version });
    expect(reverted.status).toBe(200);
    expect(reverted.body.prerequisites).toEqual([{ flag: 'parent', variants: ['on'] }]);
  });

  it('a change request or a schedule whose prerequisites close a cycle is refused when proposed, like a PUT', async () => {
    const cycle = state({ prerequisites: [{ flag: 'child', variants: ['on'] }] });
    const direct = await a.put(base('parent', 'staging'), state());
    expect(direct.status).toBe(200);
    expect((await a.put(base('child', 'staging'), state({ prerequisites: [{ flag: 'parent', variants: ['on'] }] }))).status).toBe(200);
    expect((await a.put(base('parent', 'staging'), cycle)).status).toBe(400);
    const scheduled = await a.post(`${base('parent', 'staging')}/schedules`, { at: Date.now() + 60_000, action: 'state', state: cycle });
    expect(scheduled.status).toBe(400);
    expect(JSON.stringify(scheduled.body.errors)).toMatch(/cycle/);
    expect((await a.patch('/api/v1/environments/staging', { requireApproval: true })).status).toBe(200);
    try {
      const request = await a.put(base('parent', 'staging'), cycle);
      expect(request.status).toBe(400);
      expect(JSON.stringify(request.body.errors)).toMatch(/cycle/);
      expect((await a.get('/api/v1/change-requests?environment=staging')).body.changeRequests).toEqual([]);
      // A valid proposal is held, prerequisites and all.
      const held = await a.put(base('parent', 'staging'), state({ prerequisites: [], fallthrough: { variant: 'off' } }));
      expect(held.status).toBe(202);
    } finally {
      await a.patch('/api/v1/environments/staging', { requireApproval: false });
    }
  });
});
