/**
 * The round-robin TCP proxy that stands in for the load balancer in the replica tests and bench:replicas: with one
 * backend dead, every connection (also many at once) must reach the live one, as HAProxy with redispatch would.
 */
import { connect, createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

/** What a connection through the proxy reads before it closes. */
function readThrough(proxy: TcpProxy): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    const socket = connect(Number(new URL(proxy.url).port), '127.0.0.1');
    socket.on('data', (d) => (data += d));
    socket.on('error', () => {});
    socket.on('close', () => resolve(data));
  });
}

describe('round-robin TCP proxy', () => {
  it('skips a dead backend for every connection, also when many connect at once', async () => {
    const live = createServer((s) => s.end('live'));
    const livePort = await listen(live);
    cleanups.push(() => new Promise((r) => live.close(r)));
    const dead = createServer();
    const deadPort = await listen(dead);
    await new Promise((r) => dead.close(r));
    const proxy = await startTcpProxy([
      { host: '127.0.0.1', port: deadPort },
      { host: '127.0.0.1', port: livePort },
    ]);
    cleanups.push(() => proxy.close());

    for (let i = 0; i < 4; i++) expect(await readThrough(proxy)).toBe('live');
    const burst = await Promise.all(Array.from({ length: 50 }, () => readThrough(proxy)));
    expect(burst.filter((d) => d === 'live')).toHaveLength(50);
    expect(new Set(proxy.routed)).toEqual(new Set([`127.0.0.1:${livePort}`]));
  });
});
