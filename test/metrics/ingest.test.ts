import type { MetricsReport } from '@aviary/sdk/protocol';
import { latencyBucket } from '@aviary/sdk/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { api, request, startServer, type TestServer, sqliteOf } from '../helpers/server.js';

let srv: TestServer;
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
let clock = T0;

beforeEach(async () => {
  clock = T0;
  srv = await startServer({ now: () => clock });
  const res = await api(srv).post('/api/v1/flags', { key: 'checkout', kind: 'boolean' });
  expect(res.status).toBe(201);
});
afterEach(async () => {
  await srv.close();
});

function report(sdkId: string, seq: number, stats: MetricsReport['stats']): MetricsReport {
  return { sdkId, seq, sdk: { name: 'test', version: '0' }, stats };
}

const post = (body: unknown, key = srv.sdkKeys.production) => request(srv, 'POST', '/sdk/v1/metrics', { body, token: key });

describe('POST /sdk/v1/metrics', () => {
  it('counts a report once even when it is retried', async () => {
    const r = report('sdk-a', 1, [{ flag: 'checkout', variant: 'on', minute: T0, evaluations: 10, outcomes: 4, errors: 1 }]);
    const first = await post(r);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ accepted: true, duplicate: false });
    const retry = await post(r);
    expect(retry.body).toEqual({ accepted: true, duplicate: true });
    const m = await api(srv).get('/api/v1/flags/checkout/environments/production/metrics');
    expect(m.status).toBe(200);
    expect(m.body.totals.on).toMatchObject({ evaluations: 10, outcomes: 4, errors: 1 });
  });

  it('aggregates many SDKs into per-minute rows with merged latency percentiles', async () => {
    const latencies = [5, 10, 20, 40, 80];
    const bodies = Array.from({ length: 40 }, (_, i) =>
      report(`sdk-${i % 8}`, Math.floor(i / 8) + 1, [
        {
          flag: 'checkout',
          variant: i % 2 ? 'on' : 'off',
          minute: T0 + (i % 3) * 60_000,
          evaluations: 3,
          reasons: { FALLTHROUGH: 3 },
          outcomes: 1,
          errors: i % 4 === 1 ? 1 : 0,
          latency: { [String(latencyBucket(latencies[i % 5]!))]: 1 },
        },
      ]),
    );
    const answers = await Promise.all(bodies.map((b) => post(b)));
    expect(answers.every((a) => a.status === 200 && a.body.duplicate === false)).toBe(true);
    clock = T0 + 5 * 60_000;
    const m = await api(srv).get(`/api/v1/flags/checkout/environments/production/metrics?from=${T0}&to=${T0 + 5 * 60_000}`);
    expect(m.body.totals.on.evaluations).toBe(60);
    expect(m.body.totals.off.evaluations).toBe(60);
    expect(m.body.totals.on.errors).toBe(10);
    expect(m.body.totals.on.reasons).toEqual({ FALLTHROUGH: 60 });
    const p50 = m.body.totals.off.latencyMs.p50;
    expect(p50).toBeGreaterThan(15);
    expect(p50).toBeLessThan(25);
    expect(m.body.series).toHaveLength(3);
    expect(m.body.series[0].variants.on.evaluations + m.body.series[0].variants.off.evaluations).toBe(42);
    // The SDK key decides the environment: nothing was counted elsewhere.
    const staging = await api(srv).get('/api/v1/flags/checkout/environments/staging/metrics');
    expect(staging.body.totals).toEqual({});
  });

  it('rejects an invalid report with the field path and counts nothing', async () => {
    const bad = report('sdk-b', 1, [{ flag: 'checkout', variant: 'on', minute: T0 + 5, evaluations: 1, outcomes: 1, errors: 2 }]);
    const res = await post(bad);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    const paths = (res.body.errors as Array<{ path: string }>).map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['/stats/0/minute', '/stats/0/errors']));
    const m = await api(srv).get('/api/v1/flags/checkout/environments/production/metrics');
    expect(m.body.totals).toEqual({});
    // The same (sdkId, seq) with a valid body is still counted: a rejected report does not burn its seq.
    const ok = await post(report('sdk-b', 1, [{ flag: 'checkout', variant: 'on', minute: T0, evaluations: 1, outcomes: 0, errors: 0 }]));
    expect(ok.body.duplicate).toBe(false);
  });

  it('refuses latency the schema cannot rule out: a bucket past the histogram, more samples than outcomes', async () => {
    const res = await post(
      report('sdk-lat', 1, [
        { flag: 'checkout', variant: 'on', minute: T0, evaluations: 1, outcomes: 1, errors: 0, latency: { '999': 1 } },
        { flag: 'checkout', variant: 'on', minute: T0, evaluations: 2, outcomes: 2, errors: 0, latency: { '10': 3 } },
      ]),
    );
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([
      { path: '/stats/0/latency/999', message: expect.stringMatching(/^bucket index must be 0–\d+$/) },
      { path: '/stats/1/latency', message: 'holds more samples than outcomes' },
    ]);
  });

  it('needs an SDK key', async () => {
    const res = await post(report('x', 1, []), srv.adminToken);
    expect([401, 403]).toContain(res.status);
  });

  it('answers problem+json for a bad window', async () => {
    const res = await api(srv).get('/api/v1/flags/checkout/environments/production/metrics?from=yesterday');
    expect(res.status).toBe(400);
    expect(res.body.errors[0].path).toBe('/query/from');
    expect((await api(srv).get('/api/v1/flags/nope/environments/production/metrics')).status).toBe(404);
  });

  it('takes the window as RFC 3339 (any offset) or epoch milliseconds, and answers its times in RFC 3339', async () => {
    for (const minute of [T0, T0 + 60_000, T0 + 120_000, T0 + 180_000]) {
      expect(
        (await post(report('sdk-w', minute, [{ flag: 'checkout', variant: 'on', minute, evaluations: 1, outcomes: 0, errors: 0 }]))).status,
      ).toBe(200);
    }
    clock = T0 + 10 * 60_000;
    const base = '/api/v1/flags/checkout/environments/production/metrics';
    // T0 + 1 min written three ways, T0 + 3 min two ways: the same window every time.
    const froms = [String(T0 + 60_000), '2026-01-01T12:01:00Z', '2026-01-01T13:01:00.000+01:00'];
    const tos = [String(T0 + 180_000), '2026-01-01T07:03:00-05:00'];
    for (const from of froms) {
      for (const to of tos) {
        const m = await api(srv).get(`${base}?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
        expect(m.status, JSON.stringify(m.body)).toBe(200);
        expect(m.body).toMatchObject({ from: '2026-01-01T12:01:00.000Z', to: '2026-01-01T12:03:00.000Z', stepSeconds: 60 });
        // Whole minutes, the one `to` falls in included: 12:01, 12:02 and 12:03, not 12:00.
        expect(m.body.totals.on.evaluations).toBe(3);
        expect(m.body.series.map((s: { start: string }) => s.start)).toEqual([
          '2026-01-01T12:01:00.000Z',
          '2026-01-01T12:02:00.000Z',
          '2026-01-01T12:03:00.000Z',
        ]);
      }
    }
    const stepped = await api(srv).get(`${base}?from=${T0}&to=${T0 + 150_000}&step=120`);
    expect(stepped.body.series.map((s: { start: string }) => s.start)).toEqual(['2026-01-01T12:00:00.000Z', '2026-01-01T12:02:00.000Z']);
  });

  it('names the query parameter and the reason when one is wrong', async () => {
    const base = '/api/v1/flags/checkout/environments/production/metrics';
    const cases: Array<[string, string, string]> = [
      ['from=2026-01-01', '/query/from', 'must be an RFC 3339 date-time or epoch milliseconds'],
      ['to=2026-13-01T00:00:00Z', '/query/to', 'must be an RFC 3339 date-time or epoch milliseconds'],
      ['step=90', '/query/step', 'must be multiple of 60'],
      ['step=minute', '/query/step', 'must be integer'],
      ['step=0', '/query/step', 'must be >= 60'],
      ['step=60&step=120', '/query/step', 'must be integer'],
      [`from=${T0}&to=${T0}`, '/query/from', 'must be before `to`'],
    ];
    for (const [query, path, message] of cases) {
      const res = await api(srv).get(`${base}?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(res.body.errors, query).toEqual([{ path, message }]);
      expect(res.body.detail).toBe(`${path}: ${message}`);
    }
  });

  it('deletes minutes past retention', async () => {
    await post(report('sdk-r', 1, [{ flag: 'checkout', variant: 'on', minute: T0, evaluations: 7, outcomes: 0, errors: 0 }]));
    clock = T0 + 31 * 86_400_000;
    expect(await srv.app.metrics.prune()).toBe(1);
    const m = await api(srv).get(`/api/v1/flags/checkout/environments/production/metrics?from=${T0}&to=${T0 + 3_600_000}`);
    expect(m.body.totals).toEqual({});
  });

  it('exposes ingest counters on /metrics', async () => {
    await post(report('sdk-p', 1, [{ flag: 'checkout', variant: 'on', minute: T0, evaluations: 1, outcomes: 0, errors: 0 }]));
    await post(report('sdk-p', 1, [{ flag: 'checkout', variant: 'on', minute: T0, evaluations: 1, outcomes: 0, errors: 0 }]));
    const res = await fetch(`${srv.url}/metrics`);
    const text = await res.text();
    expect(text).toMatch(/aviary_metrics_reports_total\{result="counted"\} 1/);
    expect(text).toMatch(/aviary_metrics_reports_total\{result="duplicate"\} 1/);
  });
});

describe('a batch that fails to commit', () => {
  it('is not acknowledged, counts nothing, and its retry is counted once', async () => {
    // A real SQLite failure inside the batch transaction (as a full disk would raise), on this connection only.
    sqliteOf(srv.app).exec(`CREATE TEMP TRIGGER metrics_fail BEFORE INSERT ON metrics_minute WHEN NEW.flag = 'checkout'
      BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END`);
    const r = report('sdk-f', 1, [{ flag: 'checkout', variant: 'on', minute: T0, evaluations: 9, outcomes: 3, errors: 1 }]);
    const failed = await post(r);
    expect(failed.status).toBe(503);
    expect(failed.headers.get('retry-after')).toBe('1');
    expect(failed.headers.get('content-type')).toContain('application/problem+json');
    sqliteOf(srv.app).exec('DROP TRIGGER metrics_fail');
    const retried = await post(r);
    expect(retried.body).toEqual({ accepted: true, duplicate: false });
    expect((await post(r)).body).toEqual({ accepted: true, duplicate: true });
    const m = await api(srv).get('/api/v1/flags/checkout/environments/production/metrics');
    expect(m.body.totals.on).toMatchObject({ evaluations: 9, outcomes: 3, errors: 1 });
  });
});
