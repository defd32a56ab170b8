import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
let a: ReturnType<typeof api>;
let sdk: string;
beforeAll(async () => {
  srv = await startServer();
  a = api(srv);
  sdk = srv.sdkKeys.production;
  await a.post('/api/v1/flags', {
    key: 'banner',
    kind: 'string',
    variants: [
      { key: 'blue', value: 'Blue' },
      { key: 'red', value: 'Red' },
    ],
  });
  await a.put('/api/v1/flags/banner/environments/production', {
    enabled: true,
    offVariant: 'blue',
    targets: [{ variant: 'red', keys: ['vip'] }],
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'red', percent: 50 },
          { variant: 'blue', percent: 50 },
        ],
      },
    },
  });
  await a.post('/api/v1/flags', { key: 'limits', kind: 'json', variants: [{ key: 'default', value: { max: 10 } }] });
  await a.post('/api/v1/flags/limits/environments/production/revive');
});
afterAll(async () => {
  await srv.close();
});

describe('GET /sdk/v1/flags', () => {
  it('answers the environment snapshot with its version as ETag, 304 while unchanged, 200 after a change', async () => {
    const first = await a.get('/sdk/v1/flags', { token: sdk });
    expect(first.status).toBe(200);
    expect(first.body.environment).toBe('production');
    expect(first.body.flags.map((f: { key: string }) => f.key)).toEqual(['banner', 'limits']);
    expect(first.body.flags[0]).toMatchObject({ kind: 'string', state: { enabled: true, targets: [{ variant: 'red', keys: ['vip'] }] } });
    const etag = first.headers.get('etag')!;
    expect(etag).toBe(`"production-${first.body.version}"`);
    const unchanged = await a.get('/sdk/v1/flags', { token: sdk, headers: { 'if-none-match': etag } });
    expect(unchanged.status).toBe(304);
    expect(unchanged.body).toBeUndefined();
    await a.post('/api/v1/flags/banner/environments/production/kill');
    const changed = await a.get('/sdk/v1/flags', { token: sdk, headers: { 'if-none-match': etag } });
    expect(changed.status).toBe(200);
    expect(changed.body.version).toBe(first.body.version + 1);
    await a.post('/api/v1/flags/banner/environments/production/revive');
  });
});

describe('POST /sdk/v1/evaluate', () => {
  it('evaluates every flag for a context with the fixed reasons', async () => {
    const res = await a.post('/sdk/v1/evaluate', { context: { key: 'vip' } }, { token: sdk });
    expect(res.status).toBe(200);
    expect(res.body.flags.banner).toEqual({ value: 'Red', variant: 'red', reason: { kind: 'TARGET_MATCH' } });
    expect(res.body.flags.limits).toMatchObject({ value: { max: 10 }, variant: 'default', reason: { kind: 'FALLTHROUGH' } });
    const rolled = await a.post('/sdk/v1/evaluate', { context: { key: 'user-42' }, flags: ['banner'] }, { token: sdk });
    expect(rolled.body.flags.banner.reason).toMatchObject({ kind: 'FALLTHROUGH', inRollout: true, bucket: expect.any(Number) });
    expect(Object.keys(rolled.body.flags)).toEqual(['banner']);
  });

  it('answers FLAG_NOT_FOUND for unknown keys and never evaluates another environment', async () => {
    const res = await a.post('/sdk/v1/evaluate', { context: { key: 'u' }, flags: ['nope'] }, { token: sdk });
    expect(res.body.flags.nope).toMatchObject({ value: null, reason: { kind: 'ERROR', errorCode: 'FLAG_NOT_FOUND' } });
    const staging = await a.post('/sdk/v1/evaluate', { context: { key: 'vip' } }, { token: srv.sdkKeys.staging });
    expect(staging.body.flags.banner).toMatchObject({ reason: { kind: 'OFF' } });
  });

  it('answers each requested key once, in request order, as one valid JSON document', async () => {
    const res = await fetch(`${srv.url}/sdk/v1/evaluate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sdk}`, 'content-type': 'application/json' },
      body: JSON.stringify({ context: { key: 'vip' }, flags: ['nope', 'banner', 'nope', 'banner'] }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const text = await res.text();
    expect(text.match(/"banner":/g)).toHaveLength(1);
    expect(text.match(/"nope":/g)).toHaveLength(1);
    const body = JSON.parse(text) as { environment: string; flags: Record<string, { reason: { kind: string } }> };
    expect(body.environment).toBe('production');
    expect(Object.keys(body.flags)).toEqual(['nope', 'banner']);
    expect(body.flags.banner!.reason.kind).toBe('TARGET_MATCH');
  });

  it('follows state changes made after the environment was compiled', async () => {
    await a.post('/sdk/v1/evaluate', { context: { key: 'vip' } }, { token: sdk });
    await a.post('/api/v1/flags/banner/environments/production/kill');
    const res = await a.post('/sdk/v1/evaluate', { context: { key: 'vip' }, flags: ['banner'] }, { token: sdk });
    expect(res.body.flags.banner).toMatchObject({ value: 'Blue', reason: { kind: 'OFF' } });
    expect(res.body.version).toBe(srv.app.snapshots.version('production'));
    await a.post('/api/v1/flags/banner/environments/production/revive');
  });

  it('rejects a malformed request with problem details naming the field', async () => {
    const noContext = await a.post('/sdk/v1/evaluate', { flags: ['banner'] }, { token: sdk });
    expect(noContext.status).toBe(400);
    expect(noContext.headers.get('content-type')).toContain('application/problem+json');
    expect(noContext.body.errors.map((e: { path: string }) => e.path)).toContain('/context');
    const badFlags = await a.post('/sdk/v1/evaluate', { context: { key: 'u' }, flags: 'banner' }, { token: sdk });
    expect(badFlags.status).toBe(400);
    expect(badFlags.body.errors.map((e: { path: string }) => e.path)).toContain('/flags');
    const badAttr = await a.post('/sdk/v1/evaluate', { context: { key: 'u', nested: { a: 1 } } }, { token: sdk });
    expect(badAttr.status).toBe(400);
    expect(badAttr.body.errors.map((e: { path: string }) => e.path)).toContain('/context/nested');
  });
});
