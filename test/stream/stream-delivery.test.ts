import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { CloseCode } from '@aviary/sdk/protocol';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { apiTimeMs } from '../helpers/time.js';
import { booleanFlag, kill, nextChange, RawStream, setState, until } from './fixtures.js';

let srv: TestServer;
const clients: AviaryClient[] = [];
const raws: RawStream[] = [];

function client(key = srv.sdkKeys.production): AviaryClient {
  const c = createClient({ baseUrl: srv.url, sdkKey: key, flushIntervalMs: 0, app: { name: 'delivery-test', version: '1.2.3' } });
  clients.push(c);
  return c;
}

function raw(key = srv.sdkKeys.production, options: { protocol?: boolean } = {}): RawStream {
  const r = new RawStream(srv, key, options);
  raws.push(r);
  return r;
}

beforeEach(async () => {
  srv = await startServer({ stream: { heartbeatMs: 200 } });
});

afterEach(async () => {
  for (const r of raws.splice(0)) r.close();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await srv.close();
});

describe('stream delivery', () => {
  it('hydrates a new client with the environment snapshot and its version', async () => {
    await booleanFlag(srv, 'checkout');
    const r = raw();
    await r.hello();
    const h = await r.next('hydrate');
    expect(h.version).toBe(srv.app.snapshots.version('production'));
    expect(h.snapshot.flags.map((f) => f.key)).toEqual(['checkout']);
    expect(h.heartbeatMs).toBe(200);

    const c = client();
    await c.ready();
    expect(c.variationDetail('checkout', { key: 'u1' }, false)).toMatchObject({ value: true, variant: 'on', reason: { kind: 'FALLTHROUGH' } });
  });

  it('streams flag upserts, archives, segment upserts and segment deletes in commit order, each acknowledged', async () => {
    await booleanFlag(srv, 'beta-ui', 'production', true);
    await setState(srv, 'beta-ui', 'production', { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'off' } });
    const c = client();
    await c.ready();
    const ctx = { key: 'ana' };
    expect(c.variation('beta-ui', ctx, true)).toBe(false);

    // segment.upsert (not yet used by a flag: applied, but no flag changed, so no change event)
    const before = c.status().version!;
    expect((await api(srv).put('/api/v1/segments/testers', { included: ['ana'], excluded: [], rules: [] })).status).toBeLessThan(300);
    await until(() => c.status().version === before + 1, 'the segment upsert');
    expect(c.snapshot()!.segments.map((s) => s.key)).toEqual(['testers']);

    // flag.upsert: a rule on the segment
    let change = nextChange(c);
    await setState(srv, 'beta-ui', 'production', {
      enabled: true,
      offVariant: 'off',
      targets: [],
      rules: [{ id: 'testers', conditions: [{ segment: 'testers' }], serve: { variant: 'on' } }],
      fallthrough: { variant: 'off' },
    });
    expect(await change).toEqual(['beta-ui']);
    expect(c.variationDetail('beta-ui', ctx, false)).toMatchObject({ value: true, reason: { kind: 'RULE_MATCH', ruleId: 'testers' } });

    // segment.upsert that changes membership: the flag using it is reported as changed
    change = nextChange(c);
    expect((await api(srv).put('/api/v1/segments/testers', { included: [], excluded: [], rules: [] })).status).toBeLessThan(300);
    expect(await change).toEqual(['beta-ui']);
    expect(c.variation('beta-ui', ctx, true)).toBe(false);

    // segment.delete (once no flag uses it), then flag.delete (archive)
    await setState(srv, 'beta-ui', 'production', { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'off' } });
    const v = srv.app.snapshots.version('production')!;
    expect((await api(srv).delete('/api/v1/segments/testers')).status).toBeLessThan(300);
    await until(() => c.status().version === v + 1, 'the segment delete');
    expect(c.snapshot()!.segments).toEqual([]);
    change = nextChange(c);
    expect((await api(srv).delete('/api/v1/flags/beta-ui')).status).toBeLessThan(300);
    expect(await change).toEqual(['beta-ui']);
    expect(c.variationDetail('beta-ui', ctx, true)).toMatchObject({ value: true, reason: { kind: 'ERROR', errorCode: 'FLAG_NOT_FOUND' } });
    const version = srv.app.snapshots.version('production')!;

    // every applied version was acknowledged
    await until(() => srv.app.streamHub.list('production')[0]?.appliedVersion === version, 'the last ack');
    expect(c.status().stream).toMatchObject({ gaps: 0, garbled: 0, resyncs: 0 });
  });

  it('answers a kill with ?waitMs with a receipt once every connected SDK applied it', async () => {
    await booleanFlag(srv, 'payments');
    const cs = [client(), client(), client()];
    await Promise.all(cs.map((c) => c.ready()));
    const body = await kill(srv, 'payments', 'production', 2_000);
    expect(body.delivery).toMatchObject({ version: body.environmentVersion, connected: 3, applied: 3, complete: true });
    expect(body.delivery.maxMs).toBeGreaterThanOrEqual(0);
    expect(body.delivery.p99Ms).toBeLessThanOrEqual(body.delivery.maxMs);
    for (const c of cs) expect(c.variationDetail('payments', { key: 'x' }, true)).toMatchObject({ value: false, reason: { kind: 'OFF' } });

    const list = await api(srv).get('/api/v1/environments/production/sdks');
    expect(list.status).toBe(200);
    expect(list.body.version).toBe(body.environmentVersion);
    expect(list.body.items).toHaveLength(3);
    expect(new Set(list.body.items.map((s: { id: string }) => s.id))).toEqual(new Set(cs.map((c) => c.sdkId)));
    for (const s of list.body.items) {
      expect(s).toMatchObject({
        app: { name: 'delivery-test', version: '1.2.3' },
        sdk: { name: '@aviary/sdk' },
        appliedVersion: body.environmentVersion,
      });
      // RFC 3339, like every time the API answers.
      expect(apiTimeMs(s.connectedAt)).toBeGreaterThan(Date.now() - 60_000);
      expect(apiTimeMs(s.appliedAt)).toBeGreaterThanOrEqual(apiTimeMs(s.connectedAt));
    }
  });

  it('delivers frames of every length class intact: a snapshot and a segment delta over 64 KiB, a kill, heartbeats', async () => {
    const many = Array.from({ length: 6000 }, (_, i) => `user-${String(i).padStart(6, '0')}`);
    await booleanFlag(srv, 'big');
    await setState(srv, 'big', 'production', {
      enabled: true,
      offVariant: 'off',
      targets: [{ variant: 'off', keys: many }],
      rules: [],
      fallthrough: { variant: 'on' },
    });
    const r = raw();
    await r.hello();
    const h = await r.next('hydrate');
    expect(JSON.stringify(h).length).toBeGreaterThan(65_536);
    const c = client();
    await c.ready();
    expect(c.variationDetail('big', { key: 'user-005999' }, true)).toMatchObject({ value: false, reason: { kind: 'TARGET_MATCH' } });
    const v = c.status().version!;
    expect((await api(srv).put('/api/v1/segments/crowd', { included: many, excluded: [], rules: [] })).status).toBeLessThan(300);
    await until(() => c.status().version === v + 1, 'the large segment delta');
    expect(c.snapshot()!.segments.find((s) => s.key === 'crowd')?.included).toHaveLength(6000);
    await kill(srv, 'big');
    await until(() => c.variationDetail('big', { key: 'x' }, true).reason.kind === 'OFF', 'the kill');
    expect((await r.next('delta')).changes[0]).toMatchObject({ type: 'segment.upsert' });
    expect(await r.next('heartbeat')).toMatchObject({ type: 'heartbeat' });
    expect(c.status().stream!.garbled).toBe(0);
  });

  it('kill-all and revive-all take ?waitMs too, answering once every connected SDK applied the panic (CONTRACT §9)', async () => {
    await booleanFlag(srv, 'p1');
    await booleanFlag(srv, 'p2');
    const cs = [client(), client()];
    await Promise.all(cs.map((c) => c.ready()));
    const killed = await api(srv).post('/api/v1/environments/production/kill-all?waitMs=2000', { reason: 'panic' });
    expect(killed.status).toBe(200);
    expect(killed.body.delivery).toMatchObject({ version: killed.body.environmentVersion, connected: 2, applied: 2, complete: true });
    for (const c of cs) expect(['p1', 'p2'].map((f) => c.variation(f, { key: 'x' }, true))).toEqual([false, false]);
    const revived = await api(srv).post('/api/v1/environments/production/revive-all?waitMs=2000', {});
    expect(revived.body.delivery).toMatchObject({ version: revived.body.environmentVersion, connected: 2, applied: 2, complete: true });
    for (const c of cs) expect(['p1', 'p2'].map((f) => c.variation(f, { key: 'x' }, false))).toEqual([true, true]);
    // Without waitMs the panic button answers as before, with no receipt.
    expect((await api(srv).post('/api/v1/environments/production/kill-all', {})).body.delivery).toBeUndefined();
  });

  it('answers a kill without ?waitMs at once, with the receipt as of now and where to follow it', async () => {
    await booleanFlag(srv, 'search');
    const c = client();
    await c.ready();
    const body = await kill(srv, 'search');
    expect(body.delivery).toMatchObject({ version: body.environmentVersion, connected: 1, url: '/api/v1/environments/production/sdks' });
    expect(body.delivery.applied).toBeLessThanOrEqual(1);
    await until(() => srv.app.streamHub.receipt('production', body.environmentVersion).complete, 'the ack');
  });

  it('answers a plain GET without the upgrade with 426 as a problem document', async () => {
    const res = await api(srv).get('/sdk/v1/stream', { token: srv.sdkKeys.production });
    expect(res.status).toBe(426);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.headers.get('upgrade')).toBe('websocket');
    expect(res.body).toMatchObject({ status: 426, title: 'Upgrade required' });
  });

  it('lists SDKs only for admins and known environments', async () => {
    expect((await api(srv).get('/api/v1/environments/production/sdks', { token: srv.sdkKeys.production })).status).toBe(403);
    expect((await api(srv).get('/api/v1/environments/production/sdks', { token: null })).status).toBe(401);
    const missing = await api(srv).get('/api/v1/environments/nowhere/sdks');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toContain('application/problem+json');
  });

  it('accepts a browser key in Sec-WebSocket-Protocol and never echoes it', async () => {
    const r = raw(srv.sdkKeys.production, { protocol: true });
    await r.hello();
    await r.next('hydrate');
    expect(r.ws.protocol).toBe('aviary.v1');
  });

  it('closes an unknown key with 4001; the SDK reports a fatal error, does not retry, and serves defaults', async () => {
    const r = raw('avi_sdk_not-a-key');
    expect(await r.closed).toBe(CloseCode.UNAUTHORIZED);
    expect(r.messages[0]).toMatchObject({ type: 'error', code: 'unauthorized' });

    const c = client('avi_sdk_not-a-key');
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    await expect(c.ready(3_000)).rejects.toThrow(/4001/);
    expect(c.variationDetail('anything', { key: 'u' }, 'dflt')).toMatchObject({ value: 'dflt', reason: { kind: 'ERROR', errorCode: 'NOT_READY' } });
    await new Promise((r) => setTimeout(r, 300));
    expect(c.status().stream!.connects).toBe(1);
    expect(errors).toHaveLength(1);
  });

  it('closes the streams of a revoked key with 4003; the client keeps its last-known flags', async () => {
    await booleanFlag(srv, 'search');
    const created = await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'revocable' });
    expect(created.status).toBe(201);
    const c = client(created.body.token);
    await c.ready();
    const r = raw(created.body.token);
    await r.hello();
    await r.next('hydrate');
    const other = client();
    await other.ready();
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));

    expect((await api(srv).delete(`/api/v1/tokens/${created.body.id}`)).status).toBeLessThan(300);
    expect(await r.closed).toBe(CloseCode.FORBIDDEN);
    await until(() => errors.length > 0, 'the revocation error');
    expect(errors[0]!.message).toMatch(/4003/);
    expect(c.variation('search', { key: 'u' }, false)).toBe(true);
    expect(c.status().connected).toBe(false);
    // Streams of other keys are untouched.
    expect(other.status().connected).toBe(true);
    expect(srv.app.streamHub.count('production')).toBe(1);
  });

  it('answers a resync with a fresh snapshot, and closes a client that keeps asking', async () => {
    await booleanFlag(srv, 'f');
    const r = raw();
    await r.hello();
    await r.next('hydrate');
    r.send({ type: 'resync', reason: 'test' });
    await until(() => r.messages.filter((m) => m.type === 'hydrate').length === 2, 'the second snapshot');
    for (let i = 0; i < 10; i++) r.send({ type: 'resync', reason: 'loop' });
    expect(await r.closed).toBe(CloseCode.PROTOCOL_ERROR);
    expect(r.messages.at(-1)).toMatchObject({ type: 'error', code: 'too-many-resyncs' });
  });

  it('closes a connection that never says hello, and one that sends garbage', async () => {
    const app = srv.app;
    await app.close();
    srv = await startServer({ dbPath: srv.dbPath, stream: { heartbeatMs: 200, helloTimeoutMs: 100 } });
    const silent = raw();
    expect(await silent.closed).toBe(CloseCode.PROTOCOL_ERROR);
    const noisy = raw();
    await noisy.opened;
    noisy.ws.send('{"type":"hello"');
    expect(await noisy.closed).toBe(CloseCode.PROTOCOL_ERROR);
    expect(noisy.messages[0]).toMatchObject({ type: 'error', code: 'bad-message' });
  });
});
