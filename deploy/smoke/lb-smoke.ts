/**
 * Tries deploy/haproxy.cfg (or deploy/nginx.conf) for real, on loopback: an embedded PostgreSQL, three real replicas
 * (server/main.ts as `npm start` runs it, on 127.0.0.2-4), the load balancer started from the file in this directory's
 * parent with only the addresses rewritten, real SDKs and admin requests through it, then a replica SIGKILLed, a replica
 * cut off from PostgreSQL, and PostgreSQL stopped and started. Prints what it saw; exits 1 if a check failed.
 *
 * Not part of `npm test` (it needs haproxy or nginx installed):
 *   apt-get install haproxy nginx-light
 *   npx tsx --conditions=aviary-source deploy/smoke/lb-smoke.ts haproxy
 *   npx tsx --conditions=aviary-source deploy/smoke/lb-smoke.ts nginx
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { startEmbeddedPostgres } from '../../test/setup/postgres-server.js';
import { freePort, PROCESS_ADMIN_TOKEN, PROCESS_SDK_KEY, startServerProcess, type ServerProcess } from '../../test/stream/server-process.js';

const mode = process.argv[2] === 'nginx' ? 'nginx' : 'haproxy';
const root = join(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), `aviary-lb-${mode}-`));
const failures: string[] = [];
const t0 = performance.now();
const log = (msg: string) => console.log(`[${((performance.now() - t0) / 1000).toFixed(2)} s] ${msg}`);
function check(ok: boolean, what: string): void {
  log(`${ok ? 'PASS' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<number | null> {
  const start = performance.now();
  while (performance.now() - start < timeoutMs) {
    if (await cond()) return Math.round(performance.now() - start);
    await sleep(25);
  }
  return null;
}

/** A TCP relay between one replica and PostgreSQL, so that replica alone can be cut off from the database. */
async function relay(target: number): Promise<{ port: number; cut(): Promise<void>; heal(): Promise<void> }> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((client) => {
        const upstream = connect(target, '127.0.0.1');
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.once('close', () => sockets.delete(s));
          s.on('error', () => {
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream).pipe(client);
      });
      server.listen(port, '127.0.0.1', resolve);
    });
  await listen();
  return {
    port,
    cut: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server!.close(() => resolve());
      }),
    heal: listen,
  };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: answers of many shapes, read field by field by the checks below
  body: any;
}
/** An HTTP request from a chosen local address (so the load balancer sees distinct clients). */
function call(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; from?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const url = new URL(path, base);
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method,
        localAddress: opts.from ?? '127.0.0.1',
        agent: false,
        headers: {
          authorization: `Bearer ${opts.token ?? PROCESS_ADMIN_TOKEN}`,
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let body: unknown = text;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON (a load balancer's own error page)
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.setTimeout(40_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Sends one command to HAProxy's runtime API; resolves with its answer. */
function haproxyCommand(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    let out = '';
    s.on('data', (d) => (out += d.toString()));
    s.on('error', reject);
    s.on('end', () => resolve(out));
    s.end(`${command}\n`);
  });
}

/** HAProxy's view of every server (runtime API `show stat`): status and current sessions, by `backend/server`. */
async function haproxyStat(socketPath: string): Promise<Map<string, { status: string; scur: number }>> {
  const lines = (await haproxyCommand(socketPath, 'show stat')).trim().split('\n');
  const head = lines[0]!.replace(/^# /, '').split(',');
  const at = (name: string) => head.indexOf(name);
  const map = new Map<string, { status: string; scur: number }>();
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    map.set(`${f[at('pxname')]}/${f[at('svname')]}`, { status: f[at('status')]!, scur: Number(f[at('scur')]) });
  }
  return map;
}

const children: ChildProcess[] = [];
const replicas: ServerProcess[] = [];
let pg: Awaited<ReturnType<typeof startEmbeddedPostgres>> | null = null;
const clients: AviaryClient[] = [];

async function main(): Promise<void> {
  pg = await startEmbeddedPostgres();
  const db = await pg.createDatabase();
  const dbUrl = new URL(db.url);
  log(`PostgreSQL on ${pg.port}`);

  // Replica i (1..3) on 127.0.0.(i+1); replica 2 reaches PostgreSQL through a relay that can be cut.
  const pgRelay = await relay(pg.port);
  const hosts = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
  const ports = await Promise.all(hosts.map(() => freePort()));
  const startReplica = (i: number) => {
    const url = new URL(dbUrl);
    if (i === 1) url.port = String(pgRelay.port);
    return startServerProcess(ports[i]!, '', {
      AVIARY_HOST: hosts[i]!,
      AVIARY_DATABASE_URL: url.toString(),
      AVIARY_TRUST_PROXY: 'loopback',
      AVIARY_AUTH_FAILURE_LIMIT: '3',
    });
  };
  const started = await Promise.all(hosts.map((_, i) => startReplica(i)));
  replicas.push(...started);
  log(`replicas: ${replicas.map((r) => r.url).join(' ')}`);

  // The load balancer, from the deploy/ file with only addresses and paths rewritten.
  const lbPort = await freePort();
  const lb = `http://127.0.0.1:${lbPort}`;
  const adminSock = join(dir, 'admin.sock');
  let config = readFileSync(join(root, 'deploy', mode === 'haproxy' ? 'haproxy.cfg' : 'nginx.conf'), 'utf8');
  for (let i = 0; i < 3; i++) config = config.replaceAll(`10.0.0.1${i + 1}:4242`, `${hosts[i]}:${ports[i]}`);
  config = config.replace('listen 8080;', `listen 127.0.0.1:${lbPort};`).replace('bind :8080', `bind 127.0.0.1:${lbPort}`);
  config = config.replace('/run/haproxy/admin.sock', adminSock).replace('/run/nginx-aviary.pid', join(dir, 'nginx.pid'));
  config = config.replace('worker_processes auto;', 'worker_processes 1;').replace('worker_connections 100000;', 'worker_connections 4096;');
  config = config.replace('worker_rlimit_nofile 200000;', 'worker_rlimit_nofile 10000;').replaceAll('maxconn 100000', 'maxconn 4000');
  const configPath = join(dir, mode === 'haproxy' ? 'haproxy.cfg' : 'nginx.conf');
  writeFileSync(configPath, config);
  const syntax =
    mode === 'haproxy'
      ? spawnSync('haproxy', ['-c', '-f', configPath], { encoding: 'utf8' })
      : spawnSync('nginx', ['-t', '-p', dir + '/', '-c', configPath], { encoding: 'utf8' });
  check(syntax.status === 0, `${mode} accepts the rewritten configuration (${(syntax.stdout + syntax.stderr).trim().split('\n').pop()})`);
  const lbProcess =
    mode === 'haproxy'
      ? spawn('haproxy', ['-f', configPath, '-db'], { stdio: ['ignore', 'ignore', 'inherit'] })
      : spawn('nginx', ['-p', dir + '/', '-c', configPath, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(lbProcess);
  const stat = () => haproxyStat(adminSock);
  const statusOf = async (name: string) => (await stat()).get(name)?.status ?? '?';
  await until(async () => {
    try {
      return (await call(lb, 'GET', '/healthz')).status === 200;
    } catch {
      return false;
    }
  }, 10_000);
  if (mode === 'haproxy') {
    const up = await until(
      async () => [...(await stat()).entries()].filter(([k]) => /^aviary_api\/a\d$/.test(k)).every(([, v]) => v.status === 'UP'),
      10_000,
    );
    check(up !== null, 'HAProxy sees every replica ready (/readyz)');
  }

  // 1. Admin API through the load balancer.
  const created = await call(lb, 'POST', '/api/v1/flags', { body: { key: 'checkout', kind: 'boolean' } });
  check(created.status === 201, `create a flag through the load balancer: ${created.status}`);
  const revived = await call(lb, 'POST', '/api/v1/flags/checkout/environments/production/revive', { body: {} });
  check(revived.status === 200, `revive it through the load balancer: ${revived.status}`);

  // 2. SDK streams (websocket upgrade) through the load balancer, spread over the replicas.
  for (let i = 0; i < 9; i++)
    clients.push(createClient({ baseUrl: lb, sdkKey: PROCESS_SDK_KEY, flushIntervalMs: 0, backoff: { initialMs: 200, maxMs: 1000 } }));
  await Promise.all(clients.map((c) => c.ready()));
  const on = (value: boolean) => clients.every((c) => c.variation('checkout', { key: 'u' }, !value) === value);
  check((await until(() => on(true), 5000)) !== null, '9 SDKs connected through the load balancer serve the flag on');
  if (mode === 'haproxy') {
    const s = await stat();
    const spread = ['a1', 'a2', 'a3'].map((a) => s.get(`aviary_stream/${a}`)?.scur ?? 0);
    check(
      spread.every((n) => n === 3),
      `leastconn spreads the streams 3/3/3: ${spread.join('/')}`,
    );
  }
  const listed = await until(async () => (await call(lb, 'GET', '/api/v1/environments/production/sdks')).body?.items?.length === 9, 5000);
  check(listed !== null, 'any replica lists all 9 SDKs');
  const kill = await call(lb, 'POST', '/api/v1/flags/checkout/environments/production/kill?waitMs=5000', { body: { reason: 'smoke' } });
  check(
    kill.status === 200 && kill.body.delivery?.connected === 9 && kill.body.delivery?.applied === 9,
    `kill through the load balancer, receipt across replicas: ${kill.status} ${JSON.stringify(kill.body.delivery ?? kill.body)}`,
  );

  // 3. X-Forwarded-For: the replicas see each client's own address (AVIARY_TRUST_PROXY=loopback), never one a client wrote.
  let limited = 0;
  for (let i = 0; i < 15; i++)
    if ((await call(lb, 'GET', '/api/v1/flags', { token: 'wrong-token-0123456789', from: '127.0.0.5' })).status === 429) limited++;
  const other = await call(lb, 'GET', '/api/v1/flags', { token: 'wrong-token-0123456789', from: '127.0.0.6' });
  const framed = await call(lb, 'GET', '/api/v1/flags', {
    token: 'wrong-token-0123456789',
    from: '127.0.0.6',
    headers: { 'x-forwarded-for': '127.0.0.5' },
  });
  check(
    limited > 0 && other.status === 401 && framed.status === 401,
    `failed-auth limit per client address behind the load balancer: 127.0.0.5 got ${limited}/15 × 429; 127.0.0.6 got ${other.status}; ` +
      `127.0.0.6 claiming 127.0.0.5 got ${framed.status}`,
  );

  // 4. Rolling restart of replica 3 (SIGTERM, then start it again): no request through the load balancer fails.
  {
    const stoppedAt = performance.now();
    let failed = 0;
    let sent = 0;
    const failures: string[] = [];
    const probe = (async () => {
      while (performance.now() - stoppedAt < 4000) {
        sent++;
        try {
          const r = await call(lb, sent % 2 ? 'GET' : 'PATCH', '/api/v1/flags/checkout', sent % 2 ? {} : { body: { description: `probe ${sent}` } });
          if (r.status !== 200) {
            failed++;
            failures.push(`${sent % 2 ? 'GET' : 'PATCH'} ${r.status} ${JSON.stringify(r.body).slice(0, 160)}`);
          }
        } catch (err) {
          failed++;
          failures.push(`${sent % 2 ? 'GET' : 'PATCH'} ${String(err)}`);
        }
        await sleep(20);
      }
    })();
    if (mode === 'haproxy') {
      // The runtime API's drain (the gentle way to take a replica out first) reaches the stream backend that tracks it.
      await haproxyCommand(adminSock, 'set server aviary_api/a3 state drain');
      const s = await stat();
      check(
        s.get('aviary_api/a3')?.status === 'DRAIN' && s.get('aviary_stream/a3')?.status === 'DRAIN',
        `drain through the runtime API: aviary_api/a3 ${s.get('aviary_api/a3')?.status}, aviary_stream/a3 ${s.get('aviary_stream/a3')?.status}`,
      );
      // Put it back: the SIGTERM below tries the harsher case, a replica stopped while still in rotation.
      await haproxyCommand(adminSock, 'set server aviary_api/a3 state ready');
    }
    await replicas[2]!.stop();
    // A receipt counts the SDKs connected now: those of the stopped replica count again once they have reconnected.
    const inTransit = await call(lb, 'POST', '/api/v1/flags/checkout/environments/production/kill?waitMs=8000', { body: { reason: 'a3 stopping' } });
    log(`a kill right after the SIGTERM: ${JSON.stringify(inTransit.body.delivery ?? inTransit.body)}`);
    const relisted = await until(async () => (await call(lb, 'GET', '/api/v1/environments/production/sdks')).body?.items?.length === 9, 8000);
    log(`all 9 SDKs listed again ${relisted} ms later`);
    const r = await call(lb, 'POST', '/api/v1/flags/checkout/environments/production/revive?waitMs=8000', { body: { reason: 'a3 restarting' } });
    check(
      r.status === 200 && r.body.delivery?.connected === 9 && r.body.delivery?.applied === 9,
      `SIGTERM of replica 3: its SDKs moved over and a revive reached all 9 (${Math.round(performance.now() - stoppedAt)} ms after the SIGTERM): ${JSON.stringify(r.body.delivery ?? r.body)}`,
    );
    await probe;
    check(
      failed === 0,
      `GETs and PATCHes through the load balancer during the 4 s after the SIGTERM: ${sent - failed}/${sent} answered 200 ${failures.join('; ')}`,
    );
    replicas[2] = await startReplica(2);
    if (mode === 'haproxy') {
      const back = await until(async () => (await statusOf('aviary_api/a3')).startsWith('UP'), 10_000);
      check(back !== null, `replica 3 restarted is back in rotation (${back} ms after it listens)`);
    }
    const k = await call(lb, 'POST', '/api/v1/flags/checkout/environments/production/kill?waitMs=5000', { body: { reason: 'a3 back' } });
    check(
      k.status === 200 && k.body.delivery?.applied === 9,
      `a kill through the load balancer after the restart reached all 9: ${JSON.stringify(k.body.delivery ?? k.body)}`,
    );
  }

  // 5. SIGKILL replica 3: requests keep succeeding (refused connections are retried elsewhere), its SDKs move over.
  const killedAt = performance.now();
  await replicas[2]!.crash();
  const markedDown = mode === 'haproxy' ? until(async () => (await statusOf('aviary_api/a3')).startsWith('DOWN'), 8000) : Promise.resolve(null);
  let errors = 0;
  let sent = 0;
  const probe = (async () => {
    while (performance.now() - killedAt < 4000) {
      sent++;
      try {
        if ((await call(lb, 'GET', '/api/v1/flags')).status !== 200) errors++;
      } catch {
        errors++;
      }
      await sleep(20);
    }
  })();
  const revive = await call(lb, 'POST', '/api/v1/flags/checkout/environments/production/revive?waitMs=10000', { body: { reason: 'a3 died' } });
  const movedMs = Math.round(performance.now() - killedAt);
  check(
    revive.status === 200 && revive.body.delivery?.connected === 9 && revive.body.delivery?.applied === 9,
    `after SIGKILL of replica 3, a revive through the load balancer reached all 9 SDKs (${movedMs} ms after the kill): ${JSON.stringify(revive.body.delivery ?? revive.body)}`,
  );
  check(on(true), 'every SDK serves the revived flag');
  await probe;
  check(errors === 0, `admin GETs through the load balancer during the 4 s after the SIGKILL: ${sent - errors}/${sent} answered 200`);
  if (mode === 'haproxy') {
    const down = await markedDown;
    check(down !== null, `HAProxy marks replica 3 DOWN (${down} ms after the SIGKILL)`);
  }

  // 6. Cut replica 2 off from PostgreSQL (HAProxy only: nginx has no active health checks).
  if (mode === 'haproxy') {
    const cutAt = performance.now();
    await pgRelay.cut();
    const notReady = await until(async () => (await call(replicas[1]!.url, 'GET', '/readyz')).status === 503, 5000);
    check(notReady !== null, `replica 2's /readyz answers 503 (${notReady} ms after the cut)`);
    const write = performance.now();
    const refused = await call(replicas[1]!.url, 'POST', '/api/v1/flags/checkout/environments/production/kill', { body: { reason: 'via a2' } });
    check(
      refused.status === 503 && refused.headers['retry-after'] !== undefined,
      `a write sent straight to replica 2 answers ${refused.status} with Retry-After ${refused.headers['retry-after']} in ${Math.round(performance.now() - write)} ms`,
    );
    const out = await until(async () => {
      const s = await stat();
      return (
        (s.get('aviary_api/a2')?.status ?? '').startsWith('DOWN') && s.get('aviary_stream/a2')?.scur === 0 && s.get('aviary_stream/a1')?.scur === 9
      );
    }, 8000);
    check(out !== null, `HAProxy takes replica 2 out and its streams move to replica 1 (${Math.round(performance.now() - cutAt)} ms after the cut)`);
    const k2 = await call(lb, 'POST', '/api/v1/flags/checkout/environments/production/kill?waitMs=8000', { body: { reason: 'a2 cut off' } });
    check(
      k2.status === 200 && k2.body.delivery?.connected === 9 && k2.body.delivery?.applied === 9 && on(false),
      `a kill through the load balancer reaches all 9 SDKs while replica 2 is cut off: ${JSON.stringify(k2.body.delivery ?? k2.body)}`,
    );
    await pgRelay.heal();
    const back = await until(async () => (await statusOf('aviary_api/a2')).startsWith('UP'), 15_000);
    check(back !== null, `replica 2 is back in rotation after the cut heals (${back} ms)`);
    const caughtUp = await call(replicas[1]!.url, 'GET', '/sdk/v1/flags', { token: PROCESS_SDK_KEY });
    const flag = (caughtUp.body?.flags ?? []).find((f: { key: string }) => f.key === 'checkout');
    check(
      flag?.state?.enabled === false,
      `replica 2 caught up by itself (it serves the kill made while it was cut off): enabled=${flag?.state?.enabled}`,
    );

    // 7. PostgreSQL down: no replica is ready; the backups still serve SDK reads from memory and the replicas answer writes.
    await pg.stop();
    const allDown = await until(async () => {
      const s = await stat();
      return ['a1', 'a2'].every((a) => (s.get(`aviary_api/${a}`)?.status ?? '').startsWith('DOWN'));
    }, 8000);
    check(allDown !== null, `PostgreSQL stopped: HAProxy marks every replica not ready (${allDown} ms)`);
    const read = await call(lb, 'GET', '/sdk/v1/flags', { token: PROCESS_SDK_KEY });
    check(
      read.status === 200,
      `SDK snapshot through the load balancer while PostgreSQL is down (served from memory by a backup entry): ${read.status}`,
    );
    const w0 = performance.now();
    const w = await call(lb, 'POST', '/api/v1/flags/checkout/environments/production/revive', { body: {} });
    check(
      w.status === 503 && w.headers['retry-after'] !== undefined && w.body?.type?.endsWith('/unavailable'),
      `a write through the load balancer while PostgreSQL is down: ${w.status}, Retry-After ${w.headers['retry-after']}, ${w.body?.type} in ${Math.round(performance.now() - w0)} ms`,
    );
    const streamsUp = await until(async () => {
      const s = await stat();
      return (s.get('aviary_stream/a1-alive')?.scur ?? 0) + (s.get('aviary_stream/a2-alive')?.scur ?? 0) === 9;
    }, 8000);
    check(streamsUp !== null && on(false), `SDKs keep their flags and stream from the backup entries: ${streamsUp} ms`);
    await pg.start();
    const ready = await until(
      async () => (await statusOf('aviary_api/a1')).startsWith('UP') && (await statusOf('aviary_api/a2')).startsWith('UP'),
      20_000,
    );
    check(ready !== null, `PostgreSQL back: every replica ready again (${ready} ms)`);
    const r2 = await call(lb, 'POST', '/api/v1/flags/checkout/environments/production/revive?waitMs=8000', { body: { reason: 'db back' } });
    check(
      r2.status === 200 && r2.body.delivery?.connected === 9 && r2.body.delivery?.applied === 9 && on(true),
      `after PostgreSQL returns, a revive through the load balancer reaches all 9 SDKs: ${JSON.stringify(r2.body.delivery ?? r2.body)}`,
    );
  }
}

async function cleanup(): Promise<void> {
  await Promise.allSettled(clients.map((c) => c.close()));
  for (const c of children) c.kill('SIGTERM');
  for (const r of replicas) if (r.child.exitCode === null) await r.crash();
  await pg?.dispose();
  rmSync(dir, { recursive: true, force: true });
}

main()
  .catch((err: unknown) => {
    failures.push(String((err as Error).stack ?? err));
    console.error(err);
  })
  .finally(async () => {
    await cleanup();
    log(failures.length ? `${failures.length} check(s) failed` : 'all checks passed');
    process.exit(failures.length ? 1 : 0);
  });
