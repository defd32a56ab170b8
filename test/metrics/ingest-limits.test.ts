/**
 * Bounded work per SDK key on the metrics side (CONTRACT §16), over real HTTP: rows only for flags and variants the
 * key's environment has and minutes within the clock-skew window, counts bounded per row, per-key quotas of rows and
 * bytes, a per-key share of the ingest queue, exactly-once per key, and retention that removes what can no longer be
 * read. Also: what a legitimate SDK sends is never refused.
 */
import { createClient, type AviaryClient } from '@aviary/sdk';
import type { MetricsReport, VariantStats } from '@aviary/sdk/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { api, request, startServer, type StartServerOptions, type TestServer, sqliteOf } from '../helpers/server.js';
import { booleanFlag, setState } from '../stream/fixtures.js';

let srv: TestServer;
const clients: AviaryClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await srv.close();
});

async function setup(options: StartServerOptions = {}) {
  srv = await startServer({ metrics: { maxDelayMs: 2, ...options.metrics }, ...options });
  await booleanFlag(srv, 'checkout');
}

const minuteNow = () => Math.floor(Date.now() / 60_000) * 60_000;
const row = (flag: string, variant: string | null, extra: Partial<VariantStats> = {}): VariantStats => ({
  flag,
  variant,
  minute: minuteNow(),
  evaluations: 1,
  outcomes: 0,
  errors: 0,
  ...extra,
});
const send = (token: string, body: MetricsReport) => request(srv, 'POST', '/sdk/v1/metrics', { body, token });
const count = (sql: string, ...args: unknown[]) =>
  (
    sqliteOf(srv.app)
      .prepare(sql)
      .get(...args) as { n: number }
  ).n;

async function clientSideKey(env = 'production'): Promise<string> {
  const res = await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: env, name: 'browser', clientSide: true });
  expect(res.status).toBe(201);
  return res.body.token as string;
}

describe('what one report may hold', () => {
  it('reports for flags that do not exist are refused and store nothing', async () => {
    await setup();
    // The reproduction grew the database by 209 MiB with twelve such reports; here, small ones.
    for (let seq = 1; seq <= 12; seq++) {
      const stats = Array.from({ length: 500 }, (_, i) => row(`no-such-flag-${seq}-${i}`, 'on', { outcomes: 1, latency: { '40': 1 } }));
      const res = await send(srv.sdkKeys.production, { sdkId: 'junk', seq, stats });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(res.body.limit).toBe('unknown-flag');
      expect(res.body.byLimit).toEqual({ 'unknown-flag': 500 });
      expect(res.body.errors[0]).toEqual({ path: '/stats/0/flag', message: `no flag "no-such-flag-${seq}-0" in this SDK key's environment` });
      expect(res.body.errors).toHaveLength(20);
    }
    expect(count('SELECT count(*) AS n FROM metrics_minute')).toBe(0);
    expect(count('SELECT count(*) AS n FROM sdk_reports')).toBe(0);
  });

  it('drops the rows it cannot count, names them, and counts the rest', async () => {
    await setup();
    const res = await send(srv.sdkKeys.production, {
      sdkId: 'mixed',
      seq: 1,
      stats: [
        row('checkout', 'on', { evaluations: 7 }),
        row('checkout', 'purple'),
        row('deleted-meanwhile', null),
        row('checkout', 'off', { minute: minuteNow() + 3_600_000 }),
        row('checkout', 'off', { minute: minuteNow() - 3 * 86_400_000 }),
        row('checkout', null, { evaluations: 100_000_001 }),
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ accepted: true, duplicate: false, dropped: { rows: 5 } });
    expect(res.body.dropped.byLimit).toEqual({ 'unknown-variant': 1, 'unknown-flag': 1, 'clock-skew': 1, 'too-old': 1, 'count-limit': 1 });
    expect(res.body.dropped.errors.map((e: { path: string }) => e.path)).toEqual([
      '/stats/1/variant',
      '/stats/2/flag',
      '/stats/3/minute',
      '/stats/4/minute',
      '/stats/5/evaluations',
    ]);
    const metrics = (await api(srv).get('/api/v1/flags/checkout/environments/production/metrics')).body;
    expect(Object.keys(metrics.totals)).toEqual(['on']);
    expect(metrics.totals.on.evaluations).toBe(7);
    const prom = await (await fetch(`${srv.url}/metrics`)).text();
    expect(prom).toMatch(/aviary_metrics_dropped_rows_total\{reason="clock-skew"\} 1/);
  });

  it('bounds counts per row more tightly for client-side keys', async () => {
    await setup();
    const key = await clientSideKey();
    const res = await send(key, { sdkId: 'b', seq: 1, stats: [row('checkout', 'on', { evaluations: 2_000_000 })] });
    expect(res.status).toBe(400);
    expect(res.body.errors[0]).toEqual({
      path: '/stats/0/evaluations',
      message: '2000000 is more than 1000000, the most one row may count for a client-side SDK key; limit: count per row',
    });
    expect((await send(srv.sdkKeys.production, { sdkId: 'b', seq: 1, stats: [row('checkout', 'on', { evaluations: 2_000_000 })] })).status).toBe(200);
  });

  it('a legitimate SDK keeps reporting when a flag is deleted under it: its report is counted, not refused', async () => {
    await setup();
    await booleanFlag(srv, 'retired');
    const c = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
    clients.push(c);
    await c.ready();
    for (let i = 0; i < 10; i++) {
      c.variation('checkout', { key: `u${i}` }, false);
      c.variation('retired', { key: `u${i}` }, false);
      c.variation('never-existed', { key: `u${i}` }, false);
    }
    // DELETE archives the flag: SDKs stop getting it, and its environment no longer serves it.
    expect((await api(srv).delete('/api/v1/flags/retired')).status).toBe(200);
    expect(await c.flush()).toBe(true);
    expect(c.status().reports).toMatchObject({ sent: 1, droppedReports: 0, pending: 0 });
    const metrics = (await api(srv).get('/api/v1/flags/checkout/environments/production/metrics')).body;
    expect(metrics.totals.on.evaluations).toBe(10);
  });
});

describe('exactly once, per SDK key', () => {
  it("a development key cannot make production's reports count as duplicates", async () => {
    await setup();
    await setState(srv, 'checkout', 'development', { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } });
    // Same (sdkId, seq), sent first with the development key.
    expect((await send(srv.sdkKeys.development, { sdkId: 'app-1', seq: 1, stats: [row('checkout', 'on', { evaluations: 5 })] })).body).toEqual({
      accepted: true,
      duplicate: false,
    });
    const prod = await send(srv.sdkKeys.production, { sdkId: 'app-1', seq: 1, stats: [row('checkout', 'on', { evaluations: 3 })] });
    expect(prod.body).toEqual({ accepted: true, duplicate: false });
    expect((await send(srv.sdkKeys.production, { sdkId: 'app-1', seq: 1, stats: [row('checkout', 'on', { evaluations: 3 })] })).body).toEqual({
      accepted: true,
      duplicate: true,
    });
    expect((await api(srv).get('/api/v1/flags/checkout/environments/production/metrics')).body.totals.on.evaluations).toBe(3);
  });
});

describe('per-key quotas', () => {
  it('rows per minute: over the allowance is 429 naming the limit; other keys are not affected', async () => {
    await setup({ metrics: { keyQuotas: { rowsPerMinute: 100 } } });
    const stats = (n: number) =>
      Array.from({ length: n }, (_, i) => row('checkout', i % 2 ? 'on' : 'off', { minute: minuteNow() - Math.floor(i / 2) * 60_000 }));
    expect((await send(srv.sdkKeys.production, { sdkId: 'q', seq: 1, stats: stats(60) })).status).toBe(200);
    const over = await send(srv.sdkKeys.production, { sdkId: 'q', seq: 2, stats: stats(60) });
    expect(over.status).toBe(429);
    expect(over.headers.get('content-type')).toContain('application/problem+json');
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(over.body).toMatchObject({ limit: 'rows-per-minute', allowance: 100 });
    const browser = await clientSideKey();
    expect((await send(browser, { sdkId: 'q', seq: 2, stats: stats(60) })).status).toBe(200);
  });

  it('bytes per minute are counted before the body is parsed', async () => {
    await setup({ metrics: { keyQuotas: { bytesPerMinute: 4_000 } } });
    const stats = Array.from({ length: 30 }, () => row('checkout', 'on'));
    expect((await send(srv.sdkKeys.production, { sdkId: 'b', seq: 1, stats })).status).toBe(200);
    const over = await send(srv.sdkKeys.production, { sdkId: 'b', seq: 2, stats });
    expect(over.status).toBe(429);
    expect(over.body.limit).toBe('bytes-per-minute');
  });

  it("one key's flood does not take the queue from another key's SDKs", async () => {
    // A small queue that holds what arrives for a second before committing it, so a flood fills it.
    await setup({ metrics: { maxQueuedRows: 8_000, maxBatchRows: 100_000, maxDelayMs: 1_000 } });
    const flooder = (await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'flooder' })).body.token as string;
    const big = (seq: number): MetricsReport => ({
      sdkId: 'flood',
      seq,
      stats: Array.from({ length: 1_000 }, (_, i) =>
        row('checkout', i % 2 ? 'on' : 'off', { minute: minuteNow() - Math.floor(i / 2) * 60_000, outcomes: 1, latency: { '40': 1 } }),
      ),
    });
    const flood = Array.from({ length: 40 }, (_, i) => send(flooder, big(i + 1)));
    await new Promise((r) => setTimeout(r, 300));
    const legit = Array.from({ length: 20 }, (_, i) => send(srv.sdkKeys.production, { sdkId: 'legit', seq: i + 1, stats: [row('checkout', 'on')] }));
    const [floodRes, legitRes] = await Promise.all([Promise.all(flood), Promise.all(legit)]);
    expect(legitRes.map((r) => r.status)).toEqual(Array(20).fill(200));
    const statuses = floodRes.map((r) => r.status);
    expect(statuses).toContain(429);
    expect(statuses).not.toContain(503);
    expect(floodRes.find((r) => r.status === 429)!.body.limit).toBe('queued-rows-per-key');
  });
});

describe('retention', () => {
  it('removes minutes beyond the clock-skew window and the metrics of flags that do not exist', async () => {
    await setup();
    expect((await send(srv.sdkKeys.production, { sdkId: 'r', seq: 1, stats: [row('checkout', 'on')] })).status).toBe(200);
    // What the floods left behind, stored before these limits: far-future minutes of a real flag, and
    // minutes of flags that never existed (in several environments, more rows than one retention step deletes).
    const insert = sqliteOf(srv.app).prepare('INSERT INTO metrics_minute (environment, flag, variant, minute, evaluations) VALUES (?, ?, ?, ?, 1)');
    for (let i = 0; i < 2_500; i++) insert.run('production', 'checkout', 'on', Date.UTC(3000, 0, 1) + i * 60_000);
    for (let i = 0; i < 3_000; i++)
      insert.run(i % 2 ? 'staging' : 'production', `ghost-${i % 7}`, 'on', minuteNow() - (i % 50) * 60_000 - Math.floor(i / 350) * 3_600_000);
    expect(count('SELECT count(*) AS n FROM metrics_minute')).toBe(5_501);
    expect(await srv.app.metrics.prune()).toBe(5_500);
    expect(sqliteOf(srv.app).prepare('SELECT flag, minute FROM metrics_minute').all()).toEqual([{ flag: 'checkout', minute: minuteNow() }]);
  });
});

describe('client-side SDK keys', () => {
  it('are created with clientSide: true, listed as such, and only SDK keys can be', async () => {
    await setup();
    const a = api(srv);
    const created = await a.post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'web', clientSide: true });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ kind: 'sdk', environment: 'production', clientSide: true });
    const server = await a.post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'backend' });
    expect(server.body.clientSide).toBe(false);
    const list = (await a.get('/api/v1/tokens')).body.tokens as Array<{ name: string; clientSide: boolean }>;
    expect(Object.fromEntries(list.map((t) => [t.name, t.clientSide]))).toMatchObject({
      web: true,
      backend: false,
      AVIARY_SDK_KEY_PRODUCTION: false,
      AVIARY_ADMIN_TOKEN: false,
    });
    expect((await a.get(`/api/v1/tokens/${created.body.id}`)).body.clientSide).toBe(true);
    const admin = await a.post('/api/v1/tokens', { kind: 'admin', name: 'x', clientSide: true });
    expect(admin.status).toBe(400);
    expect(admin.body.errors).toEqual([{ path: '/clientSide', message: 'only SDK keys are client-side or server-side' }]);
    expect((await a.post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'x', clientSide: 'yes' })).status).toBe(400);
    // A client-side key reads its environment like any SDK key.
    expect((await request(srv, 'GET', '/sdk/v1/flags', { token: created.body.token })).status).toBe(200);
  });
});
