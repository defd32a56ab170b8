/**
 * Relay tokens on the server (issue 13, CONTRACT §10): created with a scope, read flags of the environments in scope
 * (with `?environment=`), change nothing (admin routes refuse them), and only relay subscribers of the stream get the
 * keys (hydrate `keys`, `key.upsert` / `key.delete` deltas); SDK subscribers get the same versions without them.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StreamKey } from '@aviary/sdk/core';
import { api, request, startServer, type TestServer } from '../helpers/server.js';
import { booleanFlag, RawStream, until } from '../stream/fixtures.js';

let srv: TestServer;
const raws: RawStream[] = [];

beforeEach(async () => {
  srv = await startServer();
});
afterEach(async () => {
  for (const r of raws.splice(0)) r.close();
  await srv.close();
});

async function relayToken(body: Record<string, unknown>) {
  return api(srv).post('/api/v1/tokens', { kind: 'relay', name: 'edge', ...body });
}

describe('relay tokens', () => {
  it('are created with their environments (all when omitted), and refuse unknown environments, changing nothing', async () => {
    const scoped = await relayToken({ environments: ['production'] });
    expect(scoped.status).toBe(201);
    expect(scoped.body).toMatchObject({ kind: 'relay', environment: null, environments: ['production'] });
    expect(scoped.body.token).toMatch(/^avi_relay_/);
    const all = await relayToken({});
    expect(all.body.environments).toBeNull();
    const before = (await api(srv).get('/api/v1/tokens')).body.tokens.length;
    const bad = await relayToken({ environments: ['production', 'nope'] });
    expect(bad.status).toBe(400);
    expect(bad.body.errors).toEqual([{ path: '/environments/1', message: 'no environment "nope"' }]);
    expect((await api(srv).get('/api/v1/tokens')).body.tokens.length).toBe(before);
    expect((await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'x', environments: ['production'] })).status).toBe(
      400,
    );
  });

  it('read the SDK API of environments in scope only, and the admin API refuses them (403)', async () => {
    await booleanFlag(srv, 'checkout');
    const token = (await relayToken({ environments: ['production'] })).body.token as string;
    const flags = await request(srv, 'GET', '/sdk/v1/flags?environment=production', { token });
    expect(flags.status).toBe(200);
    expect(flags.body.flags.map((f: { key: string }) => f.key)).toEqual(['checkout']);
    // One environment in scope: it is the default.
    expect((await request(srv, 'GET', '/sdk/v1/flags', { token })).status).toBe(200);
    expect((await request(srv, 'GET', '/sdk/v1/flags?environment=staging', { token })).status).toBe(403);
    const admin = await request(srv, 'GET', '/api/v1/flags', { token });
    expect(admin.status).toBe(403);
    expect((await request(srv, 'POST', '/api/v1/flags/checkout/environments/production/kill', { token })).status).toBe(403);
    expect(srv.app.snapshots.get('production')!.flags[0]!.state.enabled).toBe(true);
    // A token for every environment must name the one it reads.
    const all = (await relayToken({})).body.token as string;
    expect((await request(srv, 'GET', '/sdk/v1/flags', { token: all })).status).toBe(403);
    expect((await request(srv, 'GET', '/sdk/v1/flags?environment=staging', { token: all })).status).toBe(200);
    const info = await request(srv, 'GET', '/sdk/v1/relay', { token: all });
    expect(info.body).toMatchObject({ name: 'edge', environments: expect.arrayContaining([expect.objectContaining({ key: 'production' })]) });
    expect((await request(srv, 'GET', '/sdk/v1/relay', { token: srv.sdkKeys.production })).status).toBe(403);
  });

  it('stream keys to relays only: a new key and its revocation are versioned changes SDKs see as empty deltas', async () => {
    const relay = (await relayToken({ environments: ['production'] })).body;
    const r = new RawStream(srv, relay.token, { query: '?environment=production' });
    const s = new RawStream(srv, srv.sdkKeys.production);
    raws.push(r, s);
    await r.hello();
    await s.hello();
    const h = await r.next('hydrate');
    const keys = (h as { keys?: StreamKey[] }).keys!;
    // The configured SDK key and the relay token itself, as hashes; never a secret.
    expect(keys.map((k) => k.kind).sort()).toEqual(['relay', 'sdk']);
    expect(JSON.stringify(keys)).not.toContain(srv.sdkKeys.production);
    expect(JSON.stringify(keys)).not.toContain(relay.token);
    expect((await s.next('hydrate')) as object).not.toHaveProperty('keys');

    let [rFrom, sFrom] = [r.messages.length, s.messages.length];
    const created = await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'new', clientSide: true });
    const up = await r.next('delta', rFrom);
    expect(up.changes).toEqual([
      { type: 'key.upsert', key: expect.objectContaining({ id: created.body.id, kind: 'sdk', clientSide: true, environments: ['production'] }) },
    ]);
    const sdkDelta = await s.next('delta', sFrom);
    expect(sdkDelta).toMatchObject({ version: up.version, changes: [] });

    [rFrom, sFrom] = [r.messages.length, s.messages.length];
    await api(srv).delete(`/api/v1/tokens/${created.body.id}`);
    const down = await r.next('delta', rFrom);
    expect(down.changes).toEqual([{ type: 'key.delete', id: created.body.id }]);
    expect(await s.next('delta', sFrom)).toMatchObject({ version: down.version, changes: [] });
    // A resume from before both gets the key changes (relay) or the empty deltas (SDK): the change log holds them.
    const r2 = new RawStream(srv, relay.token, { query: '?environment=production' });
    const s2 = new RawStream(srv, srv.sdkKeys.production);
    raws.push(r2, s2);
    await r2.hello(h.version);
    await s2.hello(h.version);
    await until(() => r2.messages.some((m) => m.type === 'resumed') && s2.messages.some((m) => m.type === 'resumed'), 'both resumed');
    const changes = (x: RawStream) => x.messages.flatMap((m) => (m.type === 'delta' ? m.changes.map((c) => c.type) : []));
    expect(changes(r2)).toEqual(['key.upsert', 'key.delete']);
    expect(changes(s2)).toEqual([]);
  });

  it('refuses an sdks report from an SDK subscriber (only relays report SDKs)', async () => {
    const s = new RawStream(srv, srv.sdkKeys.production);
    raws.push(s);
    await s.hello();
    await s.next('hydrate');
    s.ws.send(JSON.stringify({ type: 'sdks', upsert: [], remove: [] }));
    expect(await s.closed).toBe(4000);
  });
});
