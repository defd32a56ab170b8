/**
 * The SDK side of a server's goodbye: `error` `going-away` with `reconnectWindowMs`, then close 1001. A scripted
 * websocket server plays the server, so the test controls exactly what is said and measures when the SDK comes back.
 */
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { createClient, type AviaryClient, type EnvironmentSnapshot } from '@aviary/sdk';
import { CloseCode, encodeMessage, parseServerMessage, type ServerMessage } from '@aviary/sdk/protocol';
import { until } from '../stream/fixtures.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const snapshot: EnvironmentSnapshot = { environment: 'production', version: 5, flags: [], segments: [] };

/** A websocket server that hands each connection to `onConnection`, and records when each one arrived. */
async function scriptedServer(onConnection: (ws: WebSocket, index: number) => void) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const arrivals: number[] = [];
  wss.on('connection', (ws) => {
    arrivals.push(performance.now());
    onConnection(ws, arrivals.length - 1);
  });
  cleanups.push(() => new Promise((r) => wss.close(r)));
  cleanups.push(() => {
    for (const ws of wss.clients) ws.terminate();
  });
  return { url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`, arrivals, wss };
}

const send = (ws: WebSocket, m: ServerMessage) => ws.send(encodeMessage(m));
/** Answers the hello with a snapshot. */
const hydrateOnHello = (ws: WebSocket) => ws.once('message', () => send(ws, { type: 'hydrate', version: 5, snapshot, heartbeatMs: 10_000 }));
const goodbye = (ws: WebSocket, reconnectWindowMs: number) => {
  send(ws, { type: 'error', code: 'going-away', message: 'shutting down', reconnectWindowMs });
  ws.close(CloseCode.GOING_AWAY, 'server shutting down');
};

function sdk(url: string, backoff: Parameters<typeof createClient>[0]['backoff']): AviaryClient {
  const c = createClient({ baseUrl: url, sdkKey: 'k', flushIntervalMs: 0, backoff });
  cleanups.push(() => c.close());
  return c;
}

describe("the server's reconnect window", () => {
  it('a client whose connection was healthy reconnects within the window the goodbye gives, not its own first window', async () => {
    const s = await scriptedServer(hydrateOnHello);
    // On their own, these clients would come back anywhere within 20 s.
    const clients = Array.from({ length: 5 }, () => sdk(s.url, { initialMs: 20_000 }));
    await Promise.all(clients.map((c) => c.ready()));
    const saidGoodbye = performance.now();
    for (const ws of s.wss.clients) goodbye(ws, 300);
    await until(() => s.arrivals.length === 10, 'every client back', 5_000);
    const delays = s.arrivals.slice(5).map((t) => t - saidGoodbye);
    // Within the 300 ms window (plus a loaded machine's slack); all five inside 1.5 s of a 20 s window would happen
    // by chance about twice in a million runs.
    expect(Math.max(...delays)).toBeLessThan(1_500);
    await until(() => clients.every((c) => c.status().connected), 'every client current again');
  });

  it('a client whose reconnects were already failing keeps its own backoff: the goodbye cannot make it hurry', async () => {
    // The first connection is refused at once (a failed attempt), the second one is served, then says goodbye.
    const s = await scriptedServer((ws, i) => {
      if (i === 0) ws.close(1013, 'try again later');
      else hydrateOnHello(ws);
    });
    const c = sdk(s.url, { initialMs: 600, stableAfterMs: 60_000 });
    await c.ready(5_000);
    expect(s.arrivals).toHaveLength(2);
    const saidGoodbye = performance.now();
    goodbye([...s.wss.clients][0]!, 10);
    await until(() => s.arrivals.length === 3, 'the reconnect', 5_000);
    // The second window, 600 × 4/3 = 800 ms, is taken in its upper half: at least 400 ms, not within 10 ms.
    expect(s.arrivals[2]! - saidGoodbye).toBeGreaterThanOrEqual(390);
  });

  it('a retry-after the server asks for is still waited out, whatever the window', async () => {
    const s = await scriptedServer((ws, i) => {
      if (i > 0) return hydrateOnHello(ws);
      ws.once('message', () => {
        send(ws, { type: 'error', code: 'too-many-hydrations', message: 'later', retryAfterMs: 700, reconnectWindowMs: 10 });
        ws.close(1013, 'too-many-hydrations');
      });
    });
    sdk(s.url, { initialMs: 10 });
    await until(() => s.arrivals.length === 2, 'the retry', 5_000);
    expect(s.arrivals[1]! - s.arrivals[0]!).toBeGreaterThanOrEqual(690);
  });
});

describe('parsing the hint', () => {
  it('keeps a window that is a number of milliseconds, and drops one that is not (the message still parses)', () => {
    const parse = (reconnectWindowMs: unknown) => {
      const r = parseServerMessage(JSON.stringify({ type: 'error', code: 'going-away', message: 'bye', reconnectWindowMs }));
      if (!r.ok) throw new Error(r.error);
      return r.message;
    };
    expect(parse(2_000)).toEqual({ type: 'error', code: 'going-away', message: 'bye', reconnectWindowMs: 2_000 });
    expect(parse(0)).toMatchObject({ reconnectWindowMs: 0 });
    for (const bad of [-1, '2000', null, true, [1], { ms: 1 }]) expect(parse(bad)).not.toHaveProperty('reconnectWindowMs');
    // NaN and Infinity have no JSON spelling; 1e999 parses as Infinity, which the backoff caps at its maximum.
    expect(parseServerMessage('{"type":"error","code":"x","message":"y","reconnectWindowMs":1e999}')).toMatchObject({ ok: true });
  });
});
