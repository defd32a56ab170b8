/**
 * Shutdown with a stream client that stopped reading: SIGTERM must not wait on it. The server says goodbye to every
 * stream, gives them a moment, then drops the ones that do not answer, exits 0 and leaves the database marked as
 * cleanly stopped (so the next boot does not move every version forward and make every SDK re-download everything).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { STREAM_PROTOCOL } from '@aviary/sdk/protocol';
import { api } from '../helpers/server.js';
import { freePort, PROCESS_ADMIN_TOKEN, PROCESS_SDK_KEY, startServerProcess } from './server-process.js';

const dir = mkdtempSync(join(tmpdir(), 'aviary-shutdown-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A client-to-server websocket text frame (masked, as RFC 6455 requires of clients). */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  const mask = randomBytes(4);
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x81, 0x80 | n]) : Buffer.from([0x81, 0x80 | 126, n >> 8, n & 0xff]);
  const masked = Buffer.alloc(n);
  for (let i = 0; i < n; i++) masked[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([head, mask, masked]);
}

/** Opens the stream over a bare TCP socket, says hello, and then never reads again. */
async function stalledClient(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.write(
    'GET /sdk/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Protocol: ${STREAM_PROTOCOL}\r\nAuthorization: Bearer ${PROCESS_SDK_KEY}\r\n\r\n`,
  );
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.write(clientFrame(JSON.stringify({ type: 'hello', sdkId: 'stalled', sdkVersion: 'test' })));
  socket.pause();
  return socket;
}

describe('shutdown', () => {
  it('SIGTERM with a stream client that stopped reading exits promptly and cleanly', async () => {
    const port = await freePort();
    const dbPath = join(dir, 'aviary.db');
    let server = await startServerProcess(port, dbPath);
    const admin = { url: server.url, adminToken: PROCESS_ADMIN_TOKEN };
    // A snapshot big enough to fill the socket's buffers while the client does not read.
    for (let i = 0; i < 40; i++) {
      await api(admin).post('/api/v1/flags', {
        key: `big-${i}`,
        kind: 'string',
        description: 'x'.repeat(4000),
        variants: [{ key: 'a', value: 'y'.repeat(20_000) }],
      });
    }
    const sockets = [await stalledClient(port), await stalledClient(port)];
    const before = (await api(admin).get('/api/v1/environments')).body.environments as { key: string; version: number }[];

    const started = Date.now();
    const exited = new Promise<number | null>((resolve) => server.child.once('exit', (code) => resolve(code)));
    server.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    for (const s of sockets) s.destroy();

    server = await startServerProcess(port, dbPath);
    try {
      const after = (await api(admin).get('/api/v1/environments')).body.environments as { key: string; version: number }[];
      expect(after).toEqual(before); // no recovery gap: the stop was clean
    } finally {
      await server.stop();
    }
  }, 60_000);
});
