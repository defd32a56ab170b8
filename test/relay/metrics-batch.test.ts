/**
 * `POST /sdk/v1/metrics/batch`: a relay's batch of original SDK reports is counted exactly as direct reports, once
 * per Idempotency-Key (recorded with the counts), and hostile batches are refused whole with nothing changed.
 */
import type { MetricsReport } from '@aviary/sdk/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { api, request, startServer, type TestServer } from '../helpers/server.js';
import { createRelayTokenRow } from './relay-token.js';

let srv: TestServer;
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
let clock = T0;
const PROD = 'configured-sdk-production';
const STAGING = 'configured-sdk-staging';

async function setup(options: Parameters<typeof startServer>[0] = {}) {
  clock = T0;
  srv = await startServer({ now: () => clock, ...options });
  expect((await api(srv).post('/api/v1/flags', { key: 'checkout', kind: 'boolean' })).status).toBe(201);
}
afterEach(async () => {
  await srv?.close();
});

const report = (sdkId: string, seq: number, evaluations = 1, extra: Partial<MetricsReport['stats'][number]> = {}): MetricsReport => ({
  sdkId,
  seq,
  sdk: { name: 'test', version: '0' },
  stats: [{ flag: 'checkout', variant: 'on', minute: T0, evaluations, outcomes: 0, errors: 0, ...extra }],
});

const batch = (token: string, key: string, reports: { key: string; environment: string; report: MetricsReport }[]) =>
  request(srv, 'POST', '/sdk/v1/metrics/batch', { token, body: { reports }, headers: { 'idempotency-key': key } });

async function totals(env = 'production') {
  const m = await api(srv).get(`/api/v1/flags/checkout/environments/${env}/metrics?from=${T0}&to=${T0 + 120_000}`);
  expect(m.status).toBe(200);
  return m.body.totals.on?.evaluations ?? 0;
}

const count = async (table: string) => (await srv.app.store.get<{ n: number }>(`SELECT count(*) AS n FROM ${table}`))!.n;

describe('POST /sdk/v1/metrics/batch', () => {
  beforeEach(() => setup());

  it('counts each report once per key; a replayed Idempotency-Key counts nothing, even with other reports', async () => {
    const relay = await createRelayTokenRow(srv.app, null);
    const first = await batch(relay.token, 'inst-1:0', [
      { key: PROD, environment: 'production', report: report('a', 1, 5) },
      { key: PROD, environment: 'production', report: report('b', 1, 7) },
      { key: STAGING, environment: 'staging', report: report('a', 1, 3) },
    ]);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ accepted: true, replay: false, reports: 3, counted: 3, duplicate: 0 });
    expect(await totals()).toBe(12);
    expect(await totals('staging')).toBe(3);
    // The same key again: same success, nothing counted (even reports never seen before: the key alone decides).
    const replay = await batch(relay.token, 'inst-1:0', [{ key: PROD, environment: 'production', report: report('c', 1, 100) }]);
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ accepted: true, replay: true });
    expect(await totals()).toBe(12);
    const rows = await srv.app.store.all<{ token_id: string; batch_key: string }>('SELECT token_id, batch_key FROM relay_batches');
    expect(rows).toEqual([{ token_id: relay.id, batch_key: 'inst-1:0' }]);
    // A new key with an (sdkId, seq) already counted for that SDK key: a duplicate, not counted twice.
    const again = await batch(relay.token, 'inst-1:1', [
      { key: PROD, environment: 'production', report: report('a', 1, 5) },
      { key: PROD, environment: 'production', report: report('a', 2, 1) },
    ]);
    expect(again.body).toEqual({ accepted: true, replay: false, reports: 2, counted: 1, duplicate: 1 });
    expect(await totals()).toBe(13);
    // The same (sdkId, seq) sent directly by the SDK afterwards is a duplicate too: one dedupe for both paths.
    const direct = await request(srv, 'POST', '/sdk/v1/metrics', { token: srv.sdkKeys.production, body: report('a', 2, 1) });
    expect(direct.body).toEqual({ accepted: true, duplicate: true });
    expect(await totals()).toBe(13);
    // Batch keys expire with report keys (the exactly-once horizon, 24 h by default).
    clock += 25 * 3_600_000;
    await srv.app.metrics.prune();
    expect(await count('relay_batches')).toBe(0);
  });

  it('screens each report with its own key: rows of unknown flags are dropped, a client-side key keeps client-side limits', async () => {
    const relay = await createRelayTokenRow(srv.app, ['production']);
    const created = await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'web', clientSide: true });
    expect(created.status).toBe(201);
    const web = created.body.id as string;
    const big = 2_000_000; // above the client-side count limit (1,000,000), within the server-side one
    const res = await batch(relay.token, 'k:0', [
      { key: web, environment: 'production', report: report('browser', 1, big) },
      { key: PROD, environment: 'production', report: report('backend', 1, big) },
      {
        key: PROD,
        environment: 'production',
        report: {
          ...report('backend', 2, 1),
          stats: [...report('backend', 2, 1).stats, { flag: 'nope', variant: 'on', minute: T0, evaluations: 1, outcomes: 0, errors: 0 }],
        },
      },
    ]);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ replay: false, reports: 3, counted: 2, duplicate: 0, droppedRows: 1 });
    expect(res.body.refused).toEqual([{ index: 0, limit: 'count-limit', message: expect.stringContaining('client-side') }]);
    expect(await totals()).toBe(big + 1);
  });

  it('refuses hostile batches whole and changes nothing', async () => {
    const stagingOnly = await createRelayTokenRow(srv.app, ['staging']);
    const all = await createRelayTokenRow(srv.app, null);
    const ok = { key: STAGING, environment: 'staging', report: report('x', 1) };
    const before = { sdk: await count('sdk_reports'), batches: await count('relay_batches') };
    // An environment the token does not cover.
    const outside = await batch(stagingOnly.token, 'h:1', [ok, { key: PROD, environment: 'production', report: report('x', 2) }]);
    expect(outside.status).toBe(403);
    expect(outside.body.errors).toEqual([{ path: '/reports/1/environment', message: 'not covered by this relay token' }]);
    // A key that does not exist, and a key of another environment.
    const unknown = await batch(all.token, 'h:2', [ok, { key: 'no-such-key', environment: 'staging', report: report('x', 3) }]);
    expect(unknown.status).toBe(403);
    expect(unknown.body.errors[0]).toEqual({ path: '/reports/1/key', message: 'no SDK key "no-such-key"' });
    const otherEnv = await batch(all.token, 'h:3', [{ key: PROD, environment: 'staging', report: report('x', 4) }]);
    expect(otherEnv.status).toBe(403);
    expect(otherEnv.body.errors[0].message).toContain('reads environment "production"');
    // Too many rows, too many reports, too many bytes.
    const manyRows = Array.from({ length: 3 }, (_, i) => ({
      key: STAGING,
      environment: 'staging',
      report: { ...report(`r${i}`, 1), stats: Array.from({ length: 5_000 }, (_, j) => ({ ...report('r', 1).stats[0]!, minute: T0 - j * 60_000 })) },
    }));
    const moreRows = [...manyRows, ...manyRows, { ...manyRows[0]!, report: { ...manyRows[0]!.report, sdkId: 'z' } }];
    const rows = await batch(all.token, 'h:4', moreRows);
    expect(rows.status).toBe(413);
    expect(rows.body).toMatchObject({ limit: 'rows-per-batch', allowance: 20_000 });
    const reports = await batch(
      all.token,
      'h:5',
      Array.from({ length: 2_001 }, (_, i) => ({ ...ok, report: report('x', i) })),
    );
    expect(reports.status).toBe(400);
    expect(reports.body.errors[0]).toMatchObject({ path: '/reports', message: expect.stringContaining('2000') });
    const huge = await request(srv, 'POST', '/sdk/v1/metrics/batch', {
      token: all.token,
      headers: { 'idempotency-key': 'h:6' },
      body: JSON.stringify({ reports: [ok], pad: 'x'.repeat(17 * 1024 * 1024) }),
    });
    expect(huge.status).toBe(413);
    expect(huge.body).toMatchObject({ limit: 'bytes-per-batch' });
    // An invalid report (a minute not at a minute's start) refuses the whole batch.
    const invalid = await batch(all.token, 'h:7', [ok, { ...ok, report: report('x', 9, 1, { minute: T0 + 1 }) }]);
    expect(invalid.status).toBe(400);
    expect(invalid.body.errors[0].path).toBe('/reports/1/report/stats/0/minute');
    // No Idempotency-Key; an SDK key or an admin token instead of a relay token.
    const noKey = await request(srv, 'POST', '/sdk/v1/metrics/batch', { token: all.token, body: { reports: [ok] } });
    expect(noKey.status).toBe(400);
    expect(noKey.body.errors[0].path).toBe('/headers/idempotency-key');
    expect((await batch(srv.sdkKeys.staging, 'h:8', [ok])).status).toBe(403);
    expect((await batch(srv.adminToken, 'h:9', [ok])).status).toBe(403);
    expect((await batch('avi_relay_nope', 'h:10', [ok])).status).toBe(401);
    expect({ sdk: await count('sdk_reports'), batches: await count('relay_batches') }).toEqual(before);
    expect(await totals('staging')).toBe(0);
  });
});

describe('POST /sdk/v1/metrics/batch quotas', () => {
  beforeEach(() => setup({ metrics: { keyQuotas: { rowsPerMinute: 60 } } }));

  it('charges each report to its own SDK key: a key over its quota refuses the batch (429 naming the key), nothing counted', async () => {
    const relay = await createRelayTokenRow(srv.app, null);
    // The bucket holds 10 s of the allowance: 10 rows.
    const tenRows = (sdkId: string) => ({
      ...report(sdkId, 1),
      stats: Array.from({ length: 10 }, (_, j) => ({ ...report(sdkId, 1).stats[0]!, minute: T0 - j * 60_000 })),
    });
    expect((await batch(relay.token, 'q:0', [{ key: PROD, environment: 'production', report: tenRows('a') }])).status).toBe(200);
    const over = await batch(relay.token, 'q:1', [
      { key: STAGING, environment: 'staging', report: report('b', 1) },
      { key: PROD, environment: 'production', report: tenRows('c') },
    ]);
    expect(over.status).toBe(429);
    expect(over.headers.get('retry-after')).toBeTruthy();
    expect(over.body).toMatchObject({ limit: 'rows-per-minute', key: PROD });
    expect(await totals('staging')).toBe(0);
    expect(await count('relay_batches')).toBe(1);
    // The key's own direct reports pay from the same bucket.
    const direct = await request(srv, 'POST', '/sdk/v1/metrics', { token: srv.sdkKeys.production, body: tenRows('d') });
    expect(direct.status).toBe(429);
    // Later, the relay's retry of the same key passes and counts once.
    clock += 60_000;
    const retry = await batch(relay.token, 'q:1', [
      { key: STAGING, environment: 'staging', report: report('b', 1) },
      { key: PROD, environment: 'production', report: tenRows('c') },
    ]);
    expect(retry.body).toMatchObject({ replay: false, counted: 2 });
    expect(await totals('staging')).toBe(1);
  });
});
