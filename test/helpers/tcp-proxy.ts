/**
 * A small round-robin TCP proxy standing in for the load balancer in front of replicas: each new connection goes to
 * the next backend, skipping backends that refuse it (a dead replica), like HAProxy with health checks would.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  url: string;
  /** Backends connections went to, in order (for assertions on spreading). */
  routed: string[];
  close(): Promise<void>;
}

export async function startTcpProxy(backends: { host: string; port: number }[]): Promise<TcpProxy> {
  let next = 0;
  const sockets = new Set<Socket>();
  const routed: string[] = [];
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.pause();
    const first = next++;
    const tryBackend = (attempt: number) => {
      if (attempt >= backends.length) return void client.destroy();
      const b = backends[(first + attempt) % backends.length]!;
      const upstream = connect(b.port, b.host);
      sockets.add(upstream);
      upstream.once('close', () => sockets.delete(upstream));
      // Removed on connect, so only a failed connect (a dead backend) gets here: try the next one.
      upstream.once('error', () => tryBackend(attempt + 1));
      upstream.once('connect', () => {
        routed.push(`${b.host}:${b.port}`);
        upstream.removeAllListeners('error');
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
        client.resume();
      });
    };
    tryBackend(0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy has no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    routed,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
