/**
 * Faults the real server never produces on purpose: a scripted websocket server sends the SDK garbage, gaps,
 * duplicates and silence. Plus the real server's slow-consumer drop, and a reconnect storm after a restart.
 */
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { CloseCode, encodeMessage, parseClientMessage, type ClientMessage } from '@aviary/sdk/protocol';
import type { EnvironmentSnapshot, FlagConfig } from '@aviary/sdk';
import { startServer } from '../helpers/server.js';
import { booleanFlag, RawStream, setState, until } from './fixtures.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function flag(key: string, enabled: boolean, version = 1): FlagConfig {
  return {
    key,
    kind: 'boolean',
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    state: { enabled, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' }, version },
  };
}

function snapshot(version: number, enabled: boolean): EnvironmentSnapshot {
  return { environment: 'production', version, flags: [flag('f', enabled, version)], segments: [] };
}

/** A websocket server whose every move the test scripts. */
async function scriptedServer() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const received: ClientMessage[] = [];
  const sockets: WebSocket[] = [];
  let onHello: (ws: WebSocket) => void = () => {};
  wss.on('connection', (ws) => {
    sockets.push(ws);
    ws.on('message', (data) => {
      const m = parseClientMessage(data.toString());
      if (!m.ok) return;
      received.push(m.message);
      if (m.message.type === 'hello') onHello(ws);
    });
  });
  cleanups.push(() => new Promise((r) => wss.close(r)));
  cleanups.push(() => {
    for (const s of sockets) s.terminate();
  });
  return {
    url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    received,
    sockets,
    onHello(fn: (ws: WebSocket) => void) {
      onHello = fn;
    },
    send(ws: WebSocket, m: object | string) {
      ws.send(typeof m === 'string' ? m : encodeMessage(m as never));
    },
  };
}

function sdk(url: string, extra: Partial<Parameters<typeof createClient>[0]> = {}): AviaryClient {
  const c = createClient({ baseUrl: url, sdkKey: 'k', flushIntervalMs: 0, backoff: { initialMs: 50, maxMs: 100 }, ...extra });
  cleanups.push(() => c.close());
  return c;
}

describe('a misbehaving stream', () => {
  it('garbled messages leave the last good state in place and trigger a resync; endless garbage forces a reconnect', async () => {
    const s = await scriptedServer();
    let hellos = 0;
    s.onHello((ws) => {
      if (++hellos === 1) s.send(ws, { type: 'hydrate', version: 5, snapshot: snapshot(5, true), heartbeatMs: 10_000 });
      else s.send(ws, { type: 'resumed', version: 7, heartbeatMs: 10_000 });
    });
    const c = sdk(s.url);
    await c.ready();
    const ws = s.sockets[0]!;
    for (const junk of ['not json', '{"type":"delta","version":6,"prev":5,"changes":[{"type":"flag.upsert"}]}', '{"type":"teleport"}']) {
      s.send(ws, junk);
    }
    await until(() => s.received.filter((m) => m.type === 'resync').length === 3, 'three resync requests');
    expect(c.variation('f', { key: 'u' }, false)).toBe(true);
    expect(c.status().version).toBe(5);
    expect(c.status().stream!.garbled).toBe(3);
    // The server answers with a snapshot: the client takes it and acknowledges it.
    s.send(ws, { type: 'hydrate', version: 7, snapshot: snapshot(7, false), heartbeatMs: 10_000 });
    await until(() => c.status().version === 7, 'the fresh snapshot');
    expect(c.variation('f', { key: 'u' }, true)).toBe(false);
    await until(() => s.received.some((m) => m.type === 'ack' && m.version === 7), 'the acknowledgement of the snapshot');

    // A server that answers resyncs with more garbage is not trusted further: reconnect and resume.
    for (let i = 0; i < 4; i++) s.send(ws, '{"type":"hydrate","version":"x"}');
    await until(() => hellos === 2 && c.status().connected, 'the reconnect');
    expect(s.received.filter((m) => m.type === 'hello').at(-1)).toMatchObject({ lastVersion: 7 });
    expect(c.variation('f', { key: 'u' }, true)).toBe(false);
  });

  it('a gap makes the client resync instead of applying a delta that does not follow; duplicates are ignored', async () => {
    const s = await scriptedServer();
    s.onHello((ws) => s.send(ws, { type: 'hydrate', version: 5, snapshot: snapshot(5, true), heartbeatMs: 10_000 }));
    const c = sdk(s.url);
    await c.ready();
    const ws = s.sockets[0]!;
    // Version 6 never arrives; 7 builds on it.
    s.send(ws, { type: 'delta', version: 7, prev: 6, changes: [{ type: 'flag.upsert', flag: flag('f', false, 7) }] });
    await until(() => s.received.some((m) => m.type === 'resync'), 'a resync request');
    expect(c.variation('f', { key: 'u' }, false)).toBe(true);
    expect(c.status().stream!.gaps).toBe(1);
    // While waiting for the snapshot, further deltas are ignored rather than guessed at.
    s.send(ws, { type: 'delta', version: 8, prev: 7, changes: [{ type: 'flag.delete', key: 'f' }] });
    s.send(ws, { type: 'hydrate', version: 8, snapshot: snapshot(8, false), heartbeatMs: 10_000 });
    await until(() => c.status().version === 8, 'the snapshot');
    // A late duplicate of an old version changes nothing.
    s.send(ws, { type: 'delta', version: 6, prev: 5, changes: [{ type: 'flag.delete', key: 'f' }] });
    s.send(ws, { type: 'heartbeat', version: 8 });
    await new Promise((r) => setTimeout(r, 100));
    expect(c.variationDetail('f', { key: 'u' }, true)).toMatchObject({ value: false, reason: { kind: 'OFF' } });
    expect(c.status().stream!.ignored).toBeGreaterThanOrEqual(2);
  });

  it('a snapshot with a semantically broken flag serves that flag as MALFORMED_FLAG and everything else normally', async () => {
    const s = await scriptedServer();
    const broken = {
      ...flag('broken', true),
      state: {
        ...flag('broken', true).state,
        fallthrough: { variant: 'nope' },
        rules: [{ id: 'r', conditions: [{ attribute: 'x', op: 'teleports', values: [1] }], serve: { variant: 'on' } }],
      },
    };
    s.onHello((ws) =>
      s.send(ws, {
        type: 'hydrate',
        version: 5,
        snapshot: { environment: 'production', version: 5, flags: [flag('f', true), broken], segments: [] },
        heartbeatMs: 10_000,
      }),
    );
    const c = sdk(s.url);
    await c.ready();
    expect(c.variationDetail('broken', { key: 'u' }, false)).toMatchObject({ value: false, reason: { kind: 'ERROR', errorCode: 'MALFORMED_FLAG' } });
    expect(c.variation('f', { key: 'u' }, false)).toBe(true);
  });

  it('a heartbeat ahead of the client means it missed something: it resyncs', async () => {
    const s = await scriptedServer();
    s.onHello((ws) => s.send(ws, { type: 'hydrate', version: 5, snapshot: snapshot(5, true), heartbeatMs: 10_000 }));
    const c = sdk(s.url);
    await c.ready();
    s.send(s.sockets[0]!, { type: 'heartbeat', version: 9 });
    await until(() => s.received.some((m) => m.type === 'resync'), 'a resync request');
    expect(c.status().version).toBe(5);
  });

  it('a silent connection is dropped after the heartbeat read timeout and the client reconnects with its version', async () => {
    const s = await scriptedServer();
    let hellos = 0;
    s.onHello((ws) => {
      hellos++;
      if (hellos === 1) s.send(ws, { type: 'hydrate', version: 5, snapshot: snapshot(5, true), heartbeatMs: 100 });
      // The second connection: resume with nothing missed.
      else s.send(ws, { type: 'resumed', version: 5, heartbeatMs: 10_000 });
    });
    const c = sdk(s.url);
    await c.ready();
    const stale = new Promise<void>((r) => c.on('stale', r));
    // No heartbeat ever comes: within 2 × 100 ms + 1 s the client gives up on the connection.
    await stale;
    await until(() => hellos === 2 && c.status().connected, 'the reconnect', 5_000);
    const hellosSeen = s.received.filter((m) => m.type === 'hello');
    expect(hellosSeen[1]).toMatchObject({ lastVersion: 5 });
    expect(c.variation('f', { key: 'u' }, false)).toBe(true);
  });
});

describe('backpressure', () => {
  it('a slow consumer is dropped with 4008 without delaying the other subscribers', async () => {
    const srv = await startServer({ stream: { heartbeatMs: 5_000, maxBufferedBytes: 256 * 1024 } });
    cleanups.push(() => srv.close());
    await booleanFlag(srv, 'big');
    const slow = new RawStream(srv, srv.sdkKeys.production);
    cleanups.push(() => slow.close());
    await slow.hello();
    await slow.next('hydrate');
    // Stop reading (ws's public pause: the client's socket stops reading): the kernel buffers fill, then the
    // server's send buffer grows.
    slow.ws.pause();
    const fast = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
    cleanups.push(() => fast.close());
    await fast.ready();

    const keys = Array.from({ length: 20_000 }, (_, i) => `user-${i.toString().padStart(12, '0')}`);
    const lags: number[] = [];
    for (let i = 0; i < 40 && srv.app.streamHub.stats.slowConsumersDropped === 0; i++) {
      await setState(srv, 'big', 'production', {
        enabled: true,
        offVariant: 'off',
        targets: [{ variant: 'off', keys: keys.slice(0, 20_000 - i) }],
        rules: [],
        fallthrough: { variant: 'on' },
      });
      const v = srv.app.snapshots.version('production')!;
      const t0 = performance.now();
      await until(() => fast.status().version === v, `the fast client at version ${v}`);
      lags.push(performance.now() - t0);
    }
    expect(srv.app.streamHub.stats.slowConsumersDropped).toBe(1);
    expect(srv.app.streamHub.count('production')).toBe(1);
    // Everything was delivered to the fast client promptly all along.
    expect(Math.max(...lags)).toBeLessThan(2_000);
    slow.ws.resume();
    expect(await slow.closed).toBe(CloseCode.SLOW_CONSUMER);
  });
});

describe('reconnect storm', () => {
  it('1,000 clients reconnecting after a restart arrive spread out by jitter, not at once', async () => {
    let srv = await startServer({ stream: { heartbeatMs: 5_000 } });
    const port = Number(new URL(srv.url).port);
    const dbPath = srv.dbPath;
    cleanups.push(() => srv.close());
    await booleanFlag(srv, 'f');
    const N = 1_000;
    const clients = Array.from({ length: N }, () =>
      createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0, backoff: { initialMs: 1_000, maxMs: 2_000 } }),
    );
    cleanups.push(() => Promise.all(clients.map((c) => c.close())));
    await Promise.all(clients.map((c) => c.ready(20_000)));

    await srv.app.close();
    await new Promise((r) => setTimeout(r, 200));
    const { buildApp } = await import('../../server/app.js');
    const app = await buildApp({ dbPath, adminToken: srv.adminToken, sdkKeys: srv.sdkKeys, stream: { heartbeatMs: 5_000 } });
    const arrivals: number[] = [];
    const t0 = performance.now();
    app.websocketServer.on('connection', () => arrivals.push(performance.now() - t0));
    await app.listen({ port, host: '127.0.0.1' });
    srv = { ...srv, app, close: () => app.close() };

    await until(() => clients.every((c) => c.status().connected), 'every client reconnected', 15_000);
    expect(arrivals.length).toBeGreaterThanOrEqual(N);
    arrivals.sort((a, b) => a - b);
    const spread = arrivals[Math.floor(N * 0.9)]! - arrivals[Math.floor(N * 0.1)]!;
    // Most busy 100 ms window: with full jitter over ≥ 1 s, far fewer than all clients land in any one of them.
    let busiest = 0;
    for (let i = 0, j = 0; i < arrivals.length; i++) {
      while (arrivals[i]! - arrivals[j]! > 100) j++;
      busiest = Math.max(busiest, i - j + 1);
    }
    console.log(
      `reconnect storm: ${N} clients, p10–p90 spread ${spread.toFixed(0)} ms, busiest 100 ms window ${busiest} arrivals, last at ${arrivals.at(-1)!.toFixed(0)} ms`,
    );
    expect(spread).toBeGreaterThan(400);
    expect(busiest).toBeLessThan(N * 0.35);
  }, 60_000);
});
