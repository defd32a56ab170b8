/** A real HTTP receiver on 127.0.0.1 for webhook tests: records every request; `respond` decides each status. */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

export interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** Status to answer the n-th request (0-based). Default 200. */
  respond: (n: number) => number;
  /** Resolves once `count` requests arrived (rejects after `timeoutMs`). */
  waitFor(count: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startReceiver(port = 0): Promise<Receiver> {
  const received: Received[] = [];
  let waiters: (() => void)[] = [];
  const r: Receiver = {
    url: '',
    port: 0,
    received,
    respond: () => 200,
    waitFor(count, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (received.length >= count) {
            clearTimeout(t);
            resolve(received);
            return true;
          }
          return false;
        };
        const t = setTimeout(() => reject(new Error(`received ${received.length} of ${count} requests`)), timeoutMs);
        const again = () => {
          if (!check()) waiters.push(again);
        };
        again();
      });
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const n = received.length;
      received.push({ headers: req.headers, body, at: Date.now() });
      res.writeHead(r.respond(n)).end('ok');
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  r.port = (server.address() as AddressInfo).port;
  r.url = `http://127.0.0.1:${r.port}/hook`;
  return r;
}
