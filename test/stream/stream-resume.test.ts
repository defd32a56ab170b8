import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from '@aviary/sdk';
import { startServer, type TestServer } from '../helpers/server.js';
import { booleanFlag, kill, RawStream, revive, until } from './fixtures.js';
import { freePort, startServerProcess, type ServerProcess } from './server-process.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(options: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  const srv = await startServer({ stream: { heartbeatMs: 200 }, ...options });
  cleanups.push(() => srv.close());
  return srv;
}

function raw(srv: TestServer): RawStream {
  const r = new RawStream(srv, srv.sdkKeys.production);
  cleanups.push(() => r.close());
  return r;
}

describe('resume', () => {
  it('a client that reconnects with its last version gets only the deltas it missed', async () => {
    const srv = await server();
    await booleanFlag(srv, 'a');
    await booleanFlag(srv, 'b');
    const first = raw(srv);
    await first.hello();
    const h = await first.next('hydrate');
    first.close();

    await kill(srv, 'a');
    await kill(srv, 'b');
    const second = raw(srv);
    await second.hello(h.version);
    const resumed = await second.next('resumed');
    expect(resumed.version).toBe(h.version + 2);
    // (Heartbeats, every 200 ms here, may be interleaved by a slow machine: they carry no state.)
    const sent = second.messages.filter((m) => m.type !== 'heartbeat');
    expect(sent.map((m) => m.type)).toEqual(['delta', 'delta', 'resumed']);
    const [d1, d2] = sent as Array<{ version: number; prev: number; changes: Array<{ type: string; flag?: { key: string } }> }>;
    expect([d1!.prev, d1!.version, d2!.prev, d2!.version]).toEqual([h.version, h.version + 1, h.version + 1, h.version + 2]);
    expect(d1!.changes.map((c) => c.flag?.key)).toEqual(['a']);
    expect(d2!.changes.map((c) => c.flag?.key)).toEqual(['b']);
  });

  it('the SDK resumes after its connection drops, without a new snapshot', async () => {
    const srv = await server();
    await booleanFlag(srv, 'a');
    const c = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0, backoff: { initialMs: 100, maxMs: 200 } });
    cleanups.push(() => c.close());
    await c.ready();
    const stale = new Promise<void>((r) => c.on('stale', r));
    const hydratesBefore = srv.app.streamHub.stats.hydrates;
    for (const ws of srv.app.websocketServer.clients) ws.terminate();
    await stale;
    await kill(srv, 'a');
    // Still the last-known value while disconnected (unless it already reconnected and applied the kill).
    await until(() => c.variation('a', { key: 'u' }, true) === false, 'the kill after reconnecting');
    expect(srv.app.streamHub.stats.resumes).toBe(1);
    expect(srv.app.streamHub.stats.hydrates).toBe(hydratesBefore);
    expect(c.status().stream!.connects).toBe(2);
  });

  it('a client whose version fell out of the change log gets a fresh snapshot', async () => {
    const srv = await server({ changeLogLimit: 2 });
    await booleanFlag(srv, 'a');
    const first = raw(srv);
    await first.hello();
    const h = await first.next('hydrate');
    first.close();
    for (let i = 0; i < 3; i++) {
      await kill(srv, 'a');
      await revive(srv, 'a');
    }
    const second = raw(srv);
    await second.hello(h.version);
    const h2 = await second.next('hydrate');
    expect(h2.version).toBe(h.version + 6);
    expect(second.messages.filter((m) => m.type !== 'heartbeat').map((m) => m.type)).toEqual(['hydrate']);
  });

  it('a version from the future (a restored backup) gets a fresh snapshot', async () => {
    const srv = await server();
    await booleanFlag(srv, 'a');
    const r = raw(srv);
    await r.hello(10_000);
    const h = await r.next('hydrate');
    expect(h.version).toBe(srv.app.snapshots.version('production'));
  });
});

describe('server crash', () => {
  it('clients keep serving last-known values while the server is down, then catch up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aviary-crash-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const dbPath = join(dir, 'aviary.db');
    let proc: ServerProcess = await startServerProcess(port, dbPath);
    cleanups.push(() => proc.crash());
    const srv = { url: proc.url, adminToken: proc.adminToken };
    await booleanFlag(srv, 'checkout');

    const clients = Array.from({ length: 5 }, () =>
      createClient({ baseUrl: proc.url, sdkKey: proc.sdkKey, flushIntervalMs: 0, backoff: { initialMs: 100, maxMs: 400 } }),
    );
    cleanups.push(() => Promise.all(clients.map((c) => c.close())));
    await Promise.all(clients.map((c) => c.ready()));
    let stale = 0;
    for (const c of clients) c.on('stale', () => stale++);

    await proc.crash();
    await until(() => stale === clients.length, 'every client noticing the crash');
    await new Promise((r) => setTimeout(r, 300));
    for (const c of clients) {
      expect(c.status().connected).toBe(false);
      expect(c.variationDetail('checkout', { key: 'u' }, false)).toMatchObject({ value: true, reason: { kind: 'FALLTHROUGH' } });
    }

    proc = await startServerProcess(port, dbPath);
    const killed = await kill({ url: proc.url, adminToken: proc.adminToken }, 'checkout');
    await until(() => clients.every((c) => c.variation('checkout', { key: 'u' }, true) === false), 'every client applying the kill', 10_000);
    for (const c of clients) expect(c.status()).toMatchObject({ connected: true, version: killed.environmentVersion });
  });
});
