/**
 * A relay tree on loopback, every node its own process: the server (127.0.0.1) → relay `edge` (127.0.0.2) → relay
 * `leaf` (127.0.0.3), with real SDKs (`createClient`) on both relays. Kills reach every SDK and the receipt upstream
 * counts them with their relay path; a revoked SDK key is closed at every relay; the relays keep serving through a
 * server crash and resume with deltas after a clean restart; a relay restarted while its upstream is down serves
 * from its disk cache and says so.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { api } from '../helpers/server.js';
import { booleanFlag, kill, revive, until } from '../stream/fixtures.js';
import { freePort, startServerProcess, type ServerProcess } from '../stream/server-process.js';
import { startRelayProcess, type RelayProcess } from './relay-process.js';

const dir = mkdtempSync(join(tmpdir(), 'aviary-relay-tree-'));
const dbPath = join(dir, 'aviary.db');
let serverPort: number;
let server: ServerProcess;
let edge: RelayProcess;
let leaf: RelayProcess;
let edgeToken: string;
let leafToken: string;
let leafPort: number;
const clients: AviaryClient[] = [];

function client(baseUrl: string, sdkKey = server.sdkKey): AviaryClient {
  const c = createClient({
    baseUrl,
    sdkKey,
    flushIntervalMs: 0,
    app: { name: 'relay-tree', version: '1.0.0' },
    backoff: { initialMs: 200, maxMs: 1000 },
  });
  clients.push(c);
  return c;
}

async function relayToken(name: string): Promise<string> {
  const res = await api(server).post('/api/v1/tokens', { kind: 'relay', name, environments: ['production'] });
  expect(res.status).toBe(201);
  return res.body.token as string;
}

/** A relay's Prometheus sample, by metric name and labels. */
async function metric(relay: RelayProcess, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${relay.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  if (!line) throw new Error(`no ${name}{${labels}} in ${relay.url}/metrics`);
  return Number(line.split(' ').pop());
}

async function readyz(relay: RelayProcess): Promise<{ status: number; body: any }> {
  const res = await fetch(`${relay.url}/readyz`);
  return { status: res.status, body: await res.json() };
}

/** Opens a raw stream with `key` and resolves with the close code (after reading the hydrate). */
function streamClosed(url: string, key: string, onHydrated: () => void): Promise<number> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/sdk/v1/stream`, { headers: { authorization: `Bearer ${key}` } });
  ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', sdkId: `raw-${Math.random()}`, sdkVersion: 'test' })));
  ws.on('message', (data) => {
    if (JSON.parse(data.toString()).type === 'hydrate') onHydrated();
  });
  return new Promise((resolve) => ws.once('close', (code) => resolve(code)));
}

beforeAll(async () => {
  serverPort = await freePort();
  server = await startServerProcess(serverPort, dbPath);
  await booleanFlag(server, 'checkout');
  edgeToken = await relayToken('edge');
  leafToken = await relayToken('leaf');
  edge = await startRelayProcess({ host: '127.0.0.2', port: await freePort(), upstream: server.url, token: edgeToken, cacheDir: join(dir, 'edge') });
  leafPort = await freePort();
  leaf = await startRelayProcess({ host: '127.0.0.3', port: leafPort, upstream: edge.url, token: leafToken, cacheDir: join(dir, 'leaf') });
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await leaf?.stop();
  await edge?.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('relay tree: server → edge → leaf', () => {
  it('serves the flags with the same SDK key, and a kill reaches every SDK; the receipt upstream counts them with their relay path', async () => {
    const onEdge = [client(edge.url), client(edge.url)];
    const onLeaf = [client(leaf.url), client(leaf.url), client(leaf.url)];
    await Promise.all([...onEdge, ...onLeaf].map((c) => c.ready()));
    for (const c of [...onEdge, ...onLeaf]) expect(c.variation('checkout', { key: 'u' }, false)).toBe(true);

    // The relays report their SDKs upstream: wait until the server lists all five.
    const listed = async () => (await api(server).get('/api/v1/environments/production/sdks')).body.items as { id: string; via?: string[] }[];
    const deadline = Date.now() + 10_000;
    while ((await listed()).length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));

    const body = await kill(server, 'checkout', 'production', 10_000);
    for (const c of [...onEdge, ...onLeaf]) expect(c.variation('checkout', { key: 'u' }, true)).toBe(false);
    expect(body.delivery).toMatchObject({ version: body.environmentVersion, connected: 5, applied: 5, complete: true });

    const items = await listed();
    const via = new Map(items.map((s) => [s.id, s.via]));
    for (const c of onEdge) expect(via.get(c.sdkId)).toEqual(['edge']);
    for (const c of onLeaf) expect(via.get(c.sdkId)).toEqual(['edge', 'leaf']);
    await revive(server, 'checkout');
  }, 30_000);

  it('closes a revoked SDK key’s streams at every relay (4003), and refuses it afterwards', async () => {
    const created = await api(server).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'doomed' });
    const key = created.body.token as string;
    // Upstream streams the new key's hash: both relays accept it without a round trip.
    let hydrated = 0;
    const deadline = Date.now() + 5000;
    while ((await fetch(`${leaf.url}/sdk/v1/flags`, { headers: { authorization: `Bearer ${key}` } })).status !== 200 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const closes = [streamClosed(edge.url, key, () => hydrated++), streamClosed(leaf.url, key, () => hydrated++)];
    await until(() => hydrated === 2, 'both streams hydrated');
    expect((await api(server).delete(`/api/v1/tokens/${created.body.id}`)).status).toBe(200);
    expect(await Promise.all(closes)).toEqual([4003, 4003]);
    for (const relay of [edge, leaf]) {
      const res = await fetch(`${relay.url}/sdk/v1/flags`, { headers: { authorization: `Bearer ${key}` } });
      expect(res.status).toBe(401);
    }
  }, 30_000);

  it('keeps serving through a server crash; a new SDK on a relay gets flags; after a clean restart the relays resume with deltas', async () => {
    const before = await kill(server, 'checkout');
    await server.crash();
    // Upstream is gone: the relays still answer, and a new SDK connecting to the leaf gets the current flags.
    const late = client(leaf.url);
    await late.ready();
    expect(late.status().version).toBe(before.environmentVersion);
    expect(late.variation('checkout', { key: 'u' }, true)).toBe(false);
    const r = await readyz(edge);
    expect(r.status).toBe(200);
    expect(r.body.environments.production.upstream).not.toBe('connected');

    // After a crash the server moves versions forward (every SDK resyncs): the relays follow with a snapshot.
    server = await startServerProcess(serverPort, dbPath);
    await revive(server, 'checkout');
    await until(() => late.variation('checkout', { key: 'u' }, false) === true, 'the revive at the leaf SDK', 15_000);

    // A clean restart keeps the versions: the relays resume from theirs with only the deltas they missed.
    const hydratesBefore = await metric(edge, 'aviary_relay_upstream_messages', 'environment="production",kind="hydrate"');
    const leafHydratesBefore = await metric(leaf, 'aviary_relay_upstream_messages', 'environment="production",kind="hydrate"');
    const resumesBefore = await metric(edge, 'aviary_relay_upstream_messages', 'environment="production",kind="resume"');
    await server.stop();
    server = await startServerProcess(serverPort, dbPath);
    await kill(server, 'checkout');
    await until(() => late.variation('checkout', { key: 'u' }, true) === false, 'the kill at the leaf SDK', 15_000);
    expect(await metric(edge, 'aviary_relay_upstream_messages', 'environment="production",kind="resume"')).toBeGreaterThan(resumesBefore);
    expect(await metric(edge, 'aviary_relay_upstream_messages', 'environment="production",kind="hydrate"')).toBe(hydratesBefore);
    expect(await metric(leaf, 'aviary_relay_upstream_messages', 'environment="production",kind="hydrate"')).toBe(leafHydratesBefore);
  }, 60_000);

  it('a relay restarted while its upstream is down serves from its disk cache, and /readyz says so', async () => {
    const version = (await api(server).get('/api/v1/environments')).body.environments.find((e: { key: string }) => e.key === 'production').version;
    const deadline = Date.now() + 5000;
    while ((await readyz(leaf)).body.environments.production.version !== version && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    await edge.crash();
    await leaf.crash();
    leaf = await startRelayProcess({ host: '127.0.0.3', port: leafPort, upstream: edge.url, token: leafToken, cacheDir: join(dir, 'leaf') });
    const r = await readyz(leaf);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'ok', mode: 'relay', scopeFrom: 'cache', environments: { production: { snapshot: 'cache', version } } });
    expect(r.body.environments.production.upstream).not.toBe('connected');
    const res = await fetch(`${leaf.url}/sdk/v1/flags`, { headers: { authorization: `Bearer ${server.sdkKey}` } });
    expect(res.status).toBe(200);
    expect((await res.json()).version).toBe(version);
    const c = client(leaf.url);
    await c.ready();
    expect(c.variation('checkout', { key: 'u' }, true)).toBe(false);
  }, 60_000);
});
