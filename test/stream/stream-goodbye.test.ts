/**
 * The server side of a shutdown: every stream is told over what window to spread its reconnect (sized from the
 * number of open streams), then closed with 1001; an SDK reconnecting while the server closes does not hold the
 * close. And the snapshot limit per key and address gives back the snapshots of SDKs that settled, so a fleet finds
 * its whole burst again at the next restart or failover.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { booleanFlag, RawStream, until } from './fixtures.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(options: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  const srv = await startServer({ ...options, stream: { heartbeatMs: 5_000, ...options.stream } });
  let closed = false;
  cleanups.push(() => (closed ? undefined : srv.close()));
  const close = srv.close.bind(srv);
  srv.close = async (o) => {
    closed = true;
    await close(o);
  };
  await booleanFlag(srv, 'f');
  return srv;
}

async function streams(srv: TestServer, n: number): Promise<RawStream[]> {
  const out: RawStream[] = [];
  for (let i = 0; i < n; i++) {
    const r = new RawStream(srv, srv.sdkKeys.production);
    cleanups.push(() => r.close());
    await r.hello();
    await r.next('hydrate');
    out.push(r);
  }
  return out;
}

describe('goodbye', () => {
  it('says over what window to reconnect (open streams ÷ reconnectsPerSecond), then closes with 1001', async () => {
    const srv = await server({ stream: { reconnectsPerSecond: 2 } });
    const raws = await streams(srv, 3);
    expect(srv.app.streamHub.reconnectWindowMs()).toBe(1_500);
    await srv.close();
    for (const r of raws) {
      expect(await r.closed).toBe(1001);
      expect(r.messages.at(-1)).toMatchObject({ type: 'error', code: 'going-away', reconnectWindowMs: 1_500 });
    }
  });

  it('keeps the window within 0.5–4 s: a small fleet comes back at once, a large one within the 5 s goal', async () => {
    const srv = await server({ stream: { reconnectsPerSecond: 1 } });
    expect(srv.app.streamHub.reconnectWindowMs()).toBe(500);
    await streams(srv, 2);
    expect(srv.app.streamHub.reconnectWindowMs()).toBe(2_000);
    await streams(srv, 5);
    expect(srv.app.streamHub.reconnectWindowMs()).toBe(4_000);
    // The default rate, 500 per second: seven streams get the shortest window.
    const other = await server();
    await streams(other, 7);
    expect(other.app.streamHub.reconnectWindowMs()).toBe(500);
  });

  it('an SDK reconnecting while the server closes gets 503 and does not hold the close', async () => {
    const srv = await server();
    // A stream that does not answer the close frame keeps the hub's goodbye grace (1 s) open, so the upgrade below
    // arrives while the server is closing.
    const [stalled] = await streams(srv, 1);
    stalled!.ws.pause();
    const { port } = new URL(srv.url);
    const socket = connect(Number(port), '127.0.0.1');
    cleanups.push(() => socket.destroy());
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    const socketClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));

    const started = performance.now();
    const closing = srv.close();
    await new Promise((r) => setTimeout(r, 100));
    socket.write(
      `GET /sdk/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
        `Authorization: Bearer ${srv.sdkKeys.production}\r\n\r\n`,
    );
    await until(() => answer.includes('\r\n\r\n'), 'an answer to the upgrade');
    expect(answer).toMatch(/^HTTP\/1\.1 503/);
    // The client gives up on it (a FIN: only half-closes the socket, which the server must finish closing).
    socket.end();
    await socketClosed;
    await closing;
    expect(performance.now() - started).toBeLessThan(3_000);
  });
});

describe('snapshot limit refunds', () => {
  it('gives back the snapshot of a connection that stayed open; a loop that does not stay gets no more', async () => {
    let t = 1_000_000;
    const srv = await server({
      now: () => t,
      stream: { heartbeatMs: 50, hydrationBurst: 3, hydrationsPerMinute: 1, hydrationRefundAfterMs: 30_000 },
    });
    const settled = await streams(srv, 3);
    const refused = new RawStream(srv, srv.sdkKeys.production);
    cleanups.push(() => refused.close());
    await refused.hello();
    expect(await refused.closed).toBe(1013);

    // 29 s later: not settled yet (and the refill has not reached one snapshot).
    t += 29_000;
    await new Promise((r) => setTimeout(r, 200));
    const early = new RawStream(srv, srv.sdkKeys.production);
    cleanups.push(() => early.close());
    await early.hello();
    expect(await early.closed).toBe(1013);

    expect(srv.app.streamHub.stats.hydrationsRefunded).toBe(0);
    // Past 30 s the three settled connections give their snapshots back on the next heartbeat: three more fit.
    t += 2_000;
    await until(() => srv.app.streamHub.stats.hydrationsRefunded === 3, 'the refunds');
    const more = await streams(srv, 3);
    expect(more).toHaveLength(3);
    // Those three closed at once (a reconnect loop): nothing comes back for them, the bucket is empty.
    for (const r of more) r.close();
    await until(() => srv.app.streamHub.count('production') === 3, 'the server seeing them close');
    t += 31_000;
    await new Promise((r) => setTimeout(r, 200));
    // 31 s of refill at one per minute is half a snapshot; the settled three were refunded once, not again.
    const loop = new RawStream(srv, srv.sdkKeys.production);
    cleanups.push(() => loop.close());
    await loop.hello();
    expect(await loop.closed).toBe(1013);
    expect(srv.app.streamHub.stats.hydrationsRefunded).toBe(3);
    expect(settled.every((r) => r.closeCode === null)).toBe(true);
  });
});
