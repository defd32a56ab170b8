/**
 * Replicas on one PostgreSQL (CONTRACT §9): real server processes, each on its own loopback address, a real
 * PostgreSQL (test/helpers/postgres.ts), real SDKs over websockets, and a round-robin TCP proxy as the load balancer.
 */
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { RawStream } from '../stream/fixtures.js';
import { call, startReplica, until } from '../helpers/replicas.js';
import { PROCESS_SDK_KEY, type ServerProcess } from '../stream/server-process.js';

let db: TestDatabase;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await db?.drop();
});

async function replica(host: string): Promise<ServerProcess> {
  const r = await startReplica(db.url, host, { AVIARY_DB_TIMEOUT_MS: '2000' });
  cleanups.push(() => (r.child.exitCode === null ? r.crash() : undefined));
  return r;
}

function sdk(baseUrl: string): AviaryClient {
  const c = createClient({ baseUrl, sdkKey: PROCESS_SDK_KEY, flushIntervalMs: 0, backoff: { initialMs: 100, maxMs: 500 } });
  cleanups.push(() => c.close());
  return c;
}

describe('replicas on one PostgreSQL', () => {
  it('a write on replica A reaches an SDK on replica B; a kill receipt counts the SDKs of both', async () => {
    const [a, b] = await Promise.all([replica('127.0.0.2'), replica('127.0.0.3')]);
    expect((await call(a.url, 'POST', '/api/v1/flags', { key: 'checkout', kind: 'boolean' })).status).toBe(201);
    expect((await call(a.url, 'POST', '/api/v1/flags/checkout/environments/production/revive', {})).status).toBe(200);
    const onA = sdk(a.url);
    const onB = sdk(b.url);
    await Promise.all([onA.ready(), onB.ready()]);
    await until(() => onB.variation('checkout', { key: 'u' }, false) && onA.variation('checkout', { key: 'u' }, false), 'both SDKs on');
    // Both replicas list both SDKs.
    await until(async () => (await call(b.url, 'GET', '/api/v1/environments/production/sdks')).body.items.length === 2, 'B lists 2 SDKs');
    const kill = await call(a.url, 'POST', '/api/v1/flags/checkout/environments/production/kill?waitMs=5000', { reason: 'incident' });
    expect(kill.status).toBe(200);
    expect(kill.body.delivery).toMatchObject({ connected: 2, applied: 2, complete: true });
    expect(onB.variation('checkout', { key: 'u' }, true)).toBe(false);
    // The write on B is seen through A as well (any replica serves the whole API).
    expect((await call(b.url, 'GET', '/api/v1/flags/checkout/environments/production')).body.enabled).toBe(false);
  });

  it('SIGKILL of a replica during a burst of writes: nothing acknowledged is lost, versions have no gaps, its SDKs move over and catch up', async () => {
    const [a, b] = await Promise.all([replica('127.0.0.4'), replica('127.0.0.5')]);
    const aPort = Number(new URL(a.url).port);
    const bPort = Number(new URL(b.url).port);
    const proxy: TcpProxy = await startTcpProxy([
      { host: '127.0.0.4', port: aPort },
      { host: '127.0.0.5', port: bPort },
    ]);
    cleanups.push(() => proxy.close());
    const flags = Array.from({ length: 8 }, (_, i) => `f${i}`);
    for (const key of flags) expect((await call(b.url, 'POST', '/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
    const clients = Array.from({ length: 6 }, () => sdk(proxy.url));
    await Promise.all(clients.map((c) => c.ready()));

    // Writes through both replicas; A is killed in the middle.
    // Each write sets a unique description, so each acknowledged one can be found afterwards.
    const acknowledged: string[] = [];
    let killed = false;
    const writer = async (base: string, name: string) => {
      for (let i = 0; i < 40; i++) {
        const flag = flags[i % flags.length]!;
        const description = `${name}-${i}`;
        try {
          const res = await call(base, 'PATCH', `/api/v1/flags/${flag}`, { description });
          if (res.status === 200) acknowledged.push(description);
        } catch {
          // a connection to the killed replica: not acknowledged
        }
      }
    };
    const burst = Promise.all([
      writer(a.url, 'a'),
      writer(b.url, 'b'),
      (async () => {
        await until(() => acknowledged.length >= 20, 'some writes');
        await a.crash();
        killed = true;
      })(),
    ]);
    await burst;
    expect(killed).toBe(true);
    expect(acknowledged.length).toBeGreaterThan(20);

    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      // Gap-free versions, one change-log row per version, the environment's counter at the last one.
      const rows = await sql<{ version: string }[]>`SELECT version FROM change_log WHERE environment = 'production' ORDER BY version`;
      const versions = rows.map((r) => Number(r.version));
      for (let i = 1; i < versions.length; i++) expect(versions[i]).toBe(versions[i - 1]! + 1);
      const [env] = await sql<{ version: string }[]>`SELECT version FROM environments WHERE key = 'production'`;
      expect(Number(env!.version)).toBe(versions[versions.length - 1]);
      // Every acknowledged write is there, with its audit entry, and each audited write has its change-log row.
      const audited = await sql<{ after: string }[]>`SELECT after FROM audit_log WHERE action = 'flag.update'`;
      const written = new Set(audited.map((r) => (JSON.parse(r.after) as { description: string }).description));
      for (const d of acknowledged) expect(written.has(d), d).toBe(true);
      const [logged] = await sql<
        { n: string }[]
      >`SELECT count(*) AS n FROM change_log WHERE environment = 'production' AND changes LIKE '%description%'`;
      expect(Number(logged!.n)).toBeGreaterThanOrEqual(written.size);
    } finally {
      await sql.end();
    }

    // A kill through B while A is away reaches every SDK (those that were on A reconnected through the proxy to B).
    const kill = await call(b.url, 'POST', '/api/v1/environments/production/kill-all?waitMs=8000', { reason: 'A is down' });
    expect(kill.status).toBe(200);
    // The receipt waited for the SDKs that were on A to reach B (each counted once) and apply the kill.
    expect(kill.body.delivery).toMatchObject({ connected: clients.length, applied: clients.length, complete: true });
    await until(() => clients.every((c) => flags.every((f) => c.variation(f, { key: 'u' }, true) === false)), 'every SDK killed', 10_000);
    // B lists each SDK once: the dead replica's row stops counting within seconds.
    await until(
      async () => (await call(b.url, 'GET', '/api/v1/environments/production/sdks')).body.items.length === clients.length,
      'B lists every SDK once',
    );
    const listed = await call(b.url, 'GET', '/api/v1/environments/production/sdks');
    expect(new Set(listed.body.items.map((s: { id: string }) => s.id)).size).toBe(clients.length);
  });

  it('an SDK resuming on a replica that has not applied its version yet waits for it instead of going back to an older snapshot', async () => {
    const [a, b] = await Promise.all([replica('127.0.0.10'), replica('127.0.0.11')]);
    expect((await call(a.url, 'POST', '/api/v1/flags', { key: 'pay', kind: 'boolean' })).status).toBe(201);
    const versionOf = async (r: ServerProcess) => ((await call(r.url, 'GET', '/api/v1/environments/production')).body as { version: number }).version;
    const current = await versionOf(a);
    await until(async () => (await versionOf(b)) === current, 'B at the current version');

    // The SDK last applied version current+1 on A (A was a moment ahead of B); it reconnects to B.
    const stream = new RawStream({ url: b.url }, PROCESS_SDK_KEY);
    cleanups.push(() => stream.close());
    await stream.hello(current + 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(stream.messages.filter((m) => m.type === 'hydrate')).toEqual([]);
    // The write that made current+1 reaches B: the SDK is resumed where it was, never handed version `current`.
    expect((await call(a.url, 'POST', '/api/v1/flags/pay/environments/production/revive', {})).status).toBe(200);
    const resumed = await stream.next('resumed');
    expect(resumed.version).toBe(current + 1);
    expect(stream.messages.some((m) => m.type === 'hydrate')).toBe(false);

    // A version no replica will ever reach (a confused client): a snapshot after the bounded wait.
    const confused = new RawStream({ url: b.url }, PROCESS_SDK_KEY);
    cleanups.push(() => confused.close());
    const asked = Date.now();
    await confused.hello(current + 50);
    const hydrate = await confused.next('hydrate', 0, 5_000);
    expect(hydrate.version).toBe(current + 1);
    expect(Date.now() - asked).toBeGreaterThanOrEqual(1_500);
  });

  it('metrics ingest works on every replica and counts a report once, whichever replicas it is sent to', async () => {
    const [a, b] = await Promise.all([replica('127.0.0.12'), replica('127.0.0.13')]);
    expect((await call(a.url, 'POST', '/api/v1/flags', { key: 'counted', kind: 'boolean' })).status).toBe(201);
    await until(
      async () =>
        (
          await fetch(`${b.url}/sdk/v1/flags`, { headers: { authorization: `Bearer ${PROCESS_SDK_KEY}` } }).then(
            (r) => r.json() as Promise<{ flags: { key: string }[] }>,
          )
        ).flags.some((f) => f.key === 'counted'),
      'B knows the flag',
    );
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    const post = (base: string, sdkId: string, seq: number, evaluations: number) =>
      fetch(`${base}/sdk/v1/metrics`, {
        method: 'POST',
        headers: { authorization: `Bearer ${PROCESS_SDK_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          sdkId,
          seq,
          sdk: { name: 'test', version: '0' },
          stats: [{ flag: 'counted', variant: 'on', minute, evaluations, outcomes: 0, errors: 0 }],
        }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { duplicate: boolean } }));
    // The same report (sdkId, seq) sent to both replicas at once, and retried: counted once.
    const answers = await Promise.all([
      post(a.url, 'sdk-1', 1, 7),
      post(b.url, 'sdk-1', 1, 7),
      post(a.url, 'sdk-1', 1, 7),
      post(b.url, 'sdk-1', 1, 7),
    ]);
    expect(answers.every((x) => x.status === 200)).toBe(true);
    expect(answers.filter((x) => !x.body.duplicate)).toHaveLength(1);
    // Different reports through different replicas all count, merged into the same minute.
    const more = await Promise.all(Array.from({ length: 20 }, (_, i) => post(i % 2 ? a.url : b.url, `sdk-${2 + (i % 4)}`, 1 + Math.floor(i / 4), 1)));
    expect(more.every((x) => x.status === 200 && !x.body.duplicate)).toBe(true);
    const metrics = await call(b.url, 'GET', `/api/v1/flags/counted/environments/production/metrics?from=${minute}&to=${minute + 60_000}`);
    expect(metrics.body.totals.on.evaluations).toBe(7 + 20);
  });
});
