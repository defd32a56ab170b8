import { afterEach, describe, expect, it } from 'vitest';
import { loggerOptions } from '../../server/ops/logging.js';
import { api, request, startServer, type TestServer } from '../helpers/server.js';
import { logSink } from '../helpers/log-sink.js';

let srv: TestServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

/** `name_bucket` lines of a histogram (optionally of one route) as [le, cumulative count] pairs, in order. */
function buckets(text: string, name: string, route?: string): [string, number][] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}_bucket{`) && (route === undefined || l.includes(`route="${route}"`)))
    .map((l) => [/le="([^"]+)"/.exec(l)![1]!, Number(l.slice(l.lastIndexOf(' ') + 1))]);
}
const count = (text: string, name: string, route?: string) =>
  Number(
    text
      .split('\n')
      .find((l) => l.startsWith(`${name}_count`) && (route === undefined || l.includes(`route="${route}"`)))
      ?.split(' ')
      .at(-1),
  );

describe('request metrics and WAL fsync timings on /metrics', () => {
  it('renders cumulative latency buckets per route that end at the request count, and times every fsync a write waited for', async () => {
    srv = await startServer();
    await api(srv).post('/api/v1/flags', { key: 'pay', kind: 'boolean' });
    for (let i = 0; i < 3; i++)
      expect((await request(srv, 'POST', '/sdk/v1/evaluate', { token: srv.sdkKeys.production, body: { context: { key: `u${i}` } } })).status).toBe(
        200,
      );
    expect((await api(srv).post('/api/v1/flags/pay/environments/production/kill')).status).toBe(200);
    const text = await (await fetch(`${srv.url}/metrics`)).text();

    const evaluate = buckets(text, 'aviary_http_request_duration_seconds', '/sdk/v1/evaluate');
    expect(evaluate.at(-1)).toEqual(['+Inf', 3]);
    expect(count(text, 'aviary_http_request_duration_seconds', '/sdk/v1/evaluate')).toBe(3);
    for (let i = 1; i < evaluate.length; i++) expect(evaluate[i]![1]).toBeGreaterThanOrEqual(evaluate[i - 1]![1]);

    // Two acknowledged writes (create, kill), each after its own fsync.
    const fsyncs = buckets(text, 'aviary_wal_fsync_seconds');
    expect(fsyncs.map(([le]) => le)).toContain('0.005');
    expect(fsyncs.at(-1)![1]).toBe(count(text, 'aviary_wal_fsync_seconds'));
    expect(count(text, 'aviary_wal_fsync_seconds')).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < fsyncs.length; i++) expect(fsyncs[i]![1]).toBeGreaterThanOrEqual(fsyncs[i - 1]![1]);
  });
});

describe('durable acknowledgements on the SDK API', () => {
  it('answers a metrics report only after an fsync, and an evaluation without one', async () => {
    srv = await startServer();
    await api(srv).post('/api/v1/flags', { key: 'pay', kind: 'boolean' });
    const fsyncs = async () => count(await (await fetch(`${srv!.url}/metrics`)).text(), 'aviary_wal_fsync_seconds');
    const before = await fsyncs();
    expect((await request(srv, 'POST', '/sdk/v1/evaluate', { token: srv.sdkKeys.production, body: { context: { key: 'u' } } })).status).toBe(200);
    expect(await fsyncs()).toBe(before);
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    const report = {
      sdkId: 'sdk-a',
      seq: 1,
      sdk: { name: 'test', version: '0' },
      stats: [{ flag: 'pay', variant: 'on', minute, evaluations: 3, outcomes: 1, errors: 0 }],
    };
    const res = await request(srv, 'POST', '/sdk/v1/metrics', { token: srv.sdkKeys.production, body: report });
    expect(res.status).toBe(200);
    expect(await fsyncs()).toBeGreaterThan(before);
  });
});

describe('request logging', () => {
  it('writes nothing for a successful SDK request at info, a debug line at debug, and a redacted warning for a slow request', async () => {
    const info = logSink();
    srv = await startServer({ logger: loggerOptions('info', info.stream) });
    expect((await request(srv, 'POST', '/sdk/v1/evaluate', { token: srv.sdkKeys.production, body: { context: { key: 'u' } } })).status).toBe(200);
    expect(info.lines().filter((l) => l.reqId !== undefined)).toEqual([]);
    await srv.close();

    const debug = logSink();
    srv = await startServer({ logger: loggerOptions('debug', debug.stream) });
    await request(srv, 'POST', '/sdk/v1/evaluate', { token: srv.sdkKeys.production, body: { context: { key: 'u' } } });
    const completed = debug.lines().filter((l) => l.msg === 'request completed');
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({
      level: 20,
      req: { method: 'POST', url: '/sdk/v1/evaluate', route: '/sdk/v1/evaluate' },
      res: { statusCode: 200 },
    });
    expect(typeof completed[0]!.reqId).toBe('string');
    await srv.close();

    const slow = logSink();
    srv = await startServer({ logger: loggerOptions('info', slow.stream), slowRequestMs: 0.000001 });
    await request(srv, 'GET', `/sdk/v1/flags?sdkKey=${srv.sdkKeys.production}`, { token: srv.sdkKeys.production });
    const warned = slow.lines().filter((l) => l.msg === 'slow request');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, req: { url: '/sdk/v1/flags?sdkKey=[redacted]' } });
    expect(JSON.stringify(slow.lines())).not.toContain(srv.sdkKeys.production);
  });
});
