/**
 * Websocket upgrades are the stream's alone: the real server answers an upgrade request to any other path with a
 * 404 problem document and closes the socket (no half-open upgraded sockets left behind), while the stream itself
 * still upgrades and hydrates.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { RawStream } from './fixtures.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer();
});
afterAll(async () => {
  await srv.close();
});

/** Sends a raw upgrade request; resolves with everything the server wrote and whether it closed the socket. */
function rawUpgrade(path: string, headers: Record<string, string> = {}): Promise<{ text: string; closed: boolean }> {
  const { port } = new URL(srv.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false });
    }, 3000);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    const lines = [
      `GET ${path} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      'Connection: Upgrade',
      'Upgrade: websocket',
      'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  });
}

describe('websocket upgrades outside the stream', () => {
  it.each(['/healthz', '/sdk/v1/flags', '/api/v1/environments', '/no/such/path?x=1'])(
    'refuses an upgrade to %s with a 404 problem and closes the socket',
    async (path) => {
      const { text, closed } = await rawUpgrade(path, { Authorization: `Bearer ${srv.sdkKeys.production}` });
      expect(closed).toBe(true);
      const [head, body] = text.split('\r\n\r\n');
      expect(head).toMatch(/^HTTP\/1\.1 404 /);
      expect(head!.toLowerCase()).toContain('content-type: application/problem+json');
      const problem = JSON.parse(body!) as { status: number; type: string; detail: string; instance: string };
      expect(problem.status).toBe(404);
      expect(problem.type).toMatch(/\/not-found$/);
      expect(problem.detail).toContain('/sdk/v1/stream');
      expect(problem.instance).toBe(path.split('?')[0]);
    },
  );

  it('still upgrades the stream and sends the hydration snapshot', async () => {
    const stream = new RawStream(srv, srv.sdkKeys.production);
    try {
      await stream.hello();
      const hydrate = await stream.next('hydrate');
      expect(hydrate.snapshot.environment).toBe('production');
    } finally {
      stream.close();
    }
  });

  it('a plain GET of the stream (no upgrade) still answers 426', async () => {
    const res = await fetch(`${srv.url}/sdk/v1/stream`, { headers: { authorization: `Bearer ${srv.sdkKeys.production}` } });
    expect(res.status).toBe(426);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
  });
});
