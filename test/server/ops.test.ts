import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { loggerOptions, redactUrl } from '../../server/ops/logging.js';
import { parseTrustProxy } from '../../server/config.js';
import { AuthFailureLimiter } from '../../server/rate-limit/auth-failure-limiter.js';
import { api, request, startServer, type TestServer, sqliteOf } from '../helpers/server.js';

/** The value of one sample line of a Prometheus text exposition, or undefined when the series is absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (wanted.every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

let srv: TestServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

describe('health and readiness', () => {
  it('answers /healthz and /readyz without a token on a migrated database', async () => {
    srv = await startServer();
    const health = await request(srv, 'GET', '/healthz', { token: null });
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok' });
    const ready = await request(srv, 'GET', '/readyz', { token: null });
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ok', checks: { database: 'ok', migrations: 'ok' } });
  });

  it('is not ready (503 problem) when the database lacks the latest migration', async () => {
    srv = await startServer();
    sqliteOf(srv.app).prepare('DELETE FROM __drizzle_migrations').run();
    const ready = await request(srv, 'GET', '/readyz', { token: null });
    expect(ready.status).toBe(503);
    expect(ready.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(ready.body).toMatchObject({ type: 'https://aviary.dev/problems/unavailable', status: 503, checks: { migrations: 'pending' } });
    // Liveness is a different question: the process still serves.
    expect((await request(srv, 'GET', '/healthz', { token: null })).status).toBe(200);
  });
});

describe('honest readiness and storage errors', () => {
  it('is not ready when flags cannot be read from the database, though the file is open and migrated', async () => {
    let t = 1_000_000;
    srv = await startServer({ now: () => t });
    await api(srv).post('/api/v1/flags', { key: 'checkout', kind: 'boolean' });
    expect((await request(srv, 'GET', '/readyz', { token: null })).status).toBe(200);
    const served = await request(srv, 'GET', '/sdk/v1/flags', { token: srv.sdkKeys.production });
    sqliteOf(srv.app).prepare("UPDATE flag_states SET state = '{not json'").run();
    // SDKs keep being served what was last committed (from memory), whatever happens to the file...
    const after = await request(srv, 'GET', '/sdk/v1/flags', { token: srv.sdkKeys.production });
    expect(after.status).toBe(200);
    expect(after.body).toEqual(served.body);
    t += 1000;
    const ready = await request(srv, 'GET', '/readyz', { token: null });
    expect(ready.status).toBe(503);
    // ...but the replica does not call itself ready.
    expect(ready.body).toMatchObject({ type: 'https://aviary.dev/problems/unavailable', checks: { database: 'unreadable' } });
  });

  it('a full database answers a write with 503 and Retry-After, and changes nothing', async () => {
    srv = await startServer();
    const before = (await api(srv).get('/api/v1/environments')).body;
    const pages = sqliteOf(srv.app).pragma('page_count', { simple: true }) as number;
    sqliteOf(srv.app).pragma(`max_page_count = ${pages}`);
    let res = await api(srv).post('/api/v1/flags', { key: 'f-0', kind: 'boolean', description: 'x'.repeat(3000) });
    for (let i = 1; res.status === 201 && i < 200; i++)
      res = await api(srv).post('/api/v1/flags', { key: `f-${i}`, kind: 'boolean', description: 'x'.repeat(3000) });
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(res.body.detail).toContain('out of space');
    const created = ((await api(srv).get('/api/v1/flags')).body.flags as unknown[]).length;
    // All or nothing: the environments' versions moved once per created flag, never for the refused one.
    const after = (await api(srv).get('/api/v1/environments')).body;
    for (const e of after.environments as { key: string; version: number }[]) {
      expect(e.version).toBe((before.environments as { key: string; version: number }[]).find((b) => b.key === e.key)!.version + created);
    }
  });
});

describe('Prometheus metrics', () => {
  it('counts requests by route template and status, latency, and token authentication failures', async () => {
    srv = await startServer();
    await request(srv, 'GET', '/api/v1/environments', { token: null });
    await request(srv, 'GET', '/api/v1/environments', { token: 'not-a-token' });
    await request(srv, 'GET', '/api/v1/environments', { token: srv.sdkKeys.production });
    expect((await api(srv).get('/api/v1/environments')).status).toBe(200);
    expect((await api(srv).get('/api/v1/environments')).status).toBe(200);
    await request(srv, 'GET', '/api/v1/tokens/no-such-token-1');
    await request(srv, 'GET', '/api/v1/tokens/no-such-token-2');
    // Requests no route matches, whatever their path and method, are one series. (Under the API's prefixes: elsewhere
    // the console answers, once it is built.)
    await request(srv, 'GET', '/api/v1/no/such/path', { token: null });
    await request(srv, 'GET', '/sdk/v1/nor-this-one', { token: null });
    await request(srv, 'PROPFIND', '/api/v1/flags', { token: null });

    const res = await fetch(`${srv.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    const requests = (status: string, route = '/api/v1/environments') => sample(text, 'aviary_http_requests_total', { method: 'GET', route, status });
    expect(requests('200')).toBe(2);
    expect(requests('401')).toBe(2);
    expect(requests('403')).toBe(1);
    // Route templates, not raw URLs: two different ids are one series.
    expect(requests('404', '/api/v1/tokens/:id')).toBe(2);
    expect(requests('404', 'unmatched')).toBe(2);
    expect(sample(text, 'aviary_http_requests_total', { method: 'OTHER', route: 'unmatched' })).toBe(1);
    expect(sample(text, 'aviary_http_request_duration_seconds_count', { method: 'GET', route: '/api/v1/environments' })).toBe(5);
    expect(sample(text, 'aviary_auth_failures_total', { scope: 'admin', reason: 'missing' })).toBe(1);
    expect(sample(text, 'aviary_auth_failures_total', { scope: 'admin', reason: 'invalid' })).toBe(1);
    expect(sample(text, 'aviary_auth_failures_total', { scope: 'admin', reason: 'wrong-kind' })).toBe(1);
    // Every environment reports its flag count, even when it is zero.
    for (const env of ['development', 'staging', 'production']) {
      expect(sample(text, 'aviary_flags', { environment: env, enabled: 'true' })).toBeGreaterThanOrEqual(0);
    }
    expect(sample(text, 'aviary_process_cpu_seconds_total')).toBeGreaterThan(0);
  });

  it('reports flags per environment and kill-switch state (archived flags not counted)', async () => {
    srv = await startServer();
    const a = api(srv);
    for (const key of ['a', 'b', 'gone']) await a.post('/api/v1/flags', { key, kind: 'boolean' });
    // New flags start disabled everywhere; turn some on.
    for (const [flag, env] of [
      ['a', 'production'],
      ['gone', 'production'],
      ['a', 'staging'],
    ] as const) {
      expect((await a.post(`/api/v1/flags/${flag}/environments/${env}/revive`, {})).status).toBe(200);
    }
    expect((await a.delete('/api/v1/flags/gone')).status).toBe(200);
    const text = await (await fetch(`${srv.url}/metrics`)).text();
    expect(sample(text, 'aviary_flags', { environment: 'production', enabled: 'true' })).toBe(1);
    expect(sample(text, 'aviary_flags', { environment: 'production', enabled: 'false' })).toBe(1);
    expect(sample(text, 'aviary_flags', { environment: 'staging', enabled: 'true' })).toBe(1);
    expect(sample(text, 'aviary_flags', { environment: 'staging', enabled: 'false' })).toBe(1);
    expect(sample(text, 'aviary_flags', { environment: 'development', enabled: 'true' })).toBe(0);
    expect(sample(text, 'aviary_flags', { environment: 'development', enabled: 'false' })).toBe(2);
  });
});

describe('failed authentication rate limit', () => {
  it('refuses an address with 429 and Retry-After after too many failures, until the window ends', async () => {
    let t = 1_000_000;
    srv = await startServer({ now: () => t });
    const limit = srv.app.authLimiter.limit;
    for (let i = 0; i < limit; i++) {
      const res = await request(srv, 'GET', '/api/v1/environments', { token: `wrong-${i}` });
      expect(res.status).toBe(401);
    }
    // Over the limit: failing requests are refused before authentication, on the SDK API too.
    const refused = await request(srv, 'GET', '/api/v1/environments', { token: 'wrong-again' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused.body).toMatchObject({ type: 'https://aviary.dev/problems/too-many-requests', status: 429 });
    expect(Number(refused.headers.get('retry-after'))).toBe(60);
    expect((await request(srv, 'GET', '/sdk/v1/flags', { token: null })).status).toBe(429);
    // Every route that takes a token: the evaluate route, OFREP, and the stream's upgrade (refused before it).
    const evaluated = await request(srv, 'POST', '/sdk/v1/evaluate', { token: 'wrong-sdk-key', body: { context: { key: 'u' } } });
    expect(evaluated.status).toBe(429);
    expect(evaluated.body).toMatchObject({ type: 'https://aviary.dev/problems/too-many-requests', instance: '/sdk/v1/evaluate' });
    expect((await request(srv, 'POST', '/ofrep/v1/evaluate/flags', { token: 'wrong-sdk-key', body: { context: {} } })).status).toBe(429);
    const upgrade = (key: string) =>
      new Promise<{ status: number; retryAfter: string | undefined }>((resolve) => {
        const ws = new WebSocket(`${srv!.url.replace('http', 'ws')}/sdk/v1/stream`, ['aviary.v1'], { headers: { authorization: `Bearer ${key}` } });
        ws.on('unexpected-response', (_req, res) => {
          resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] });
          ws.terminate();
        });
        ws.on('open', () => {
          resolve({ status: 101, retryAfter: undefined });
          ws.terminate();
        });
        ws.on('error', () => {});
      });
    expect(await upgrade('wrong-sdk-key')).toEqual({ status: 429, retryAfter: '60' });
    // Valid credentials from the same address still work, everywhere: others failing must not lock out the kill switch.
    expect((await api(srv).get('/api/v1/environments')).status).toBe(200);
    expect((await request(srv, 'GET', '/sdk/v1/flags', { token: srv.sdkKeys.production })).status).toBe(200);
    expect((await request(srv, 'POST', '/sdk/v1/evaluate', { token: srv.sdkKeys.production, body: { context: { key: 'u' } } })).status).toBe(200);
    expect(
      (await request(srv, 'POST', '/ofrep/v1/evaluate/flags', { token: srv.sdkKeys.production, body: { context: { targetingKey: 'u' } } })).status,
    ).toBe(200);
    expect((await upgrade(srv.sdkKeys.production)).status).toBe(101);
    // Operations endpoints stay reachable for health checks and scrapes.
    expect((await request(srv, 'GET', '/healthz', { token: null })).status).toBe(200);
    const text = await (await fetch(`${srv.url}/metrics`)).text();
    expect(sample(text, 'aviary_auth_rate_limited_total')).toBe(5);

    t += 30_000;
    expect(Number((await request(srv, 'GET', '/api/v1/environments', { token: 'wrong' })).headers.get('retry-after'))).toBe(30);
    t += 30_000;
    expect((await request(srv, 'GET', '/api/v1/environments', { token: 'wrong' })).status).toBe(401);
  });

  it('behind a trusted proxy: a client cannot lock out another address, nor escape the limit, through X-Forwarded-For', async () => {
    srv = await startServer({ trustProxy: parseTrustProxy('true') });
    const limit = srv.app.authLimiter.limit;
    // An attacker names a victim's address in the header; the proxy (this test, on loopback) appends the real peer.
    for (let i = 0; i <= limit; i++) {
      await request(srv, 'GET', '/api/v1/environments', { token: `wrong-${i}`, headers: { 'x-forwarded-for': '10.0.0.66, 198.51.100.7' } });
    }
    expect((await request(srv, 'GET', '/api/v1/environments', { token: 'wrong', headers: { 'x-forwarded-for': '198.51.100.7' } })).status).toBe(429);
    // The victim's kill goes through: its address was never the one failing.
    await api(srv).post('/api/v1/flags', { key: 'checkout', kind: 'boolean' });
    const kill = await request(srv, 'POST', '/api/v1/flags/checkout/environments/production/kill', {
      body: {},
      headers: { 'x-forwarded-for': '10.0.0.66' },
    });
    expect(kill.status).toBe(200);
    // Spoofed leftmost entries do not spread failures over fresh addresses: the proxy's entry is the client.
    for (let i = 0; i <= limit; i++) {
      await request(srv, 'GET', '/api/v1/environments', { token: `bad-${i}`, headers: { 'x-forwarded-for': `203.0.113.${i}, 192.0.2.1` } });
    }
    expect(
      (await request(srv, 'GET', '/api/v1/environments', { token: 'bad', headers: { 'x-forwarded-for': '203.0.113.250, 192.0.2.1' } })).status,
    ).toBe(429);
    // And a valid token from that blocked address still works.
    expect(
      (await request(srv, 'POST', '/api/v1/flags/checkout/environments/production/revive', { body: {}, headers: { 'x-forwarded-for': '192.0.2.1' } }))
        .status,
    ).toBe(200);
  });

  it('keeps one window per address, forgets expired ones, and bounds how many it tracks', () => {
    let t = 0;
    const limiter = new AuthFailureLimiter({ limit: 3, windowMs: 1000, maxClients: 2, now: () => t });
    for (let i = 0; i < 3; i++) limiter.recordFailure('10.0.0.1');
    limiter.recordFailure('10.0.0.2');
    expect(limiter.blockedForMs('10.0.0.1')).toBe(1000);
    expect(limiter.blockedForMs('10.0.0.2')).toBe(0);
    t = 400;
    expect(limiter.blockedForMs('10.0.0.1')).toBe(600);
    // A third address pushes out the oldest window.
    limiter.recordFailure('10.0.0.3');
    expect(limiter.size).toBe(2);
    expect(limiter.blockedForMs('10.0.0.1')).toBe(0);
    t = 2000;
    limiter.recordFailure('10.0.0.2');
    expect(limiter.blockedForMs('10.0.0.2')).toBe(0);
  });
});

describe('logging', () => {
  it('never writes tokens, SDK keys or secrets from headers, bodies or query strings', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    srv = await startServer({ logger: loggerOptions('trace', sink) });
    await api(srv).get('/api/v1/environments');
    await request(srv, 'GET', '/sdk/v1/flags?sdkKey=leaked-in-url-0123456789', {
      token: null,
      headers: { 'sec-websocket-protocol': `aviary-sdk-key.${srv.sdkKeys.staging}` },
    });
    const created = await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'ci' });
    expect(created.status).toBe(201);
    const secret: string = created.body.token;
    expect(await request(srv, 'GET', '/api/v1/environments', { token: secret })).toMatchObject({ status: 403 });

    // The request log lines are there (so the absence of secrets below means something)...
    const log = lines.join('');
    expect(log).toContain('/api/v1/tokens');
    expect(log).toContain('sdkKey=[redacted]');
    // ...and no secret is in them.
    for (const s of [srv.adminToken, srv.sdkKeys.staging, 'leaked-in-url-0123456789', secret]) expect(log).not.toContain(s);

    // Whatever a handler logs explicitly is redacted too.
    const out: string[] = [];
    const app = Fastify({ logger: loggerOptions('info', { write: (l: string) => void out.push(l) }) });
    app.log.info({ req: { headers: { authorization: 'Bearer s3cret-a', 'sec-websocket-protocol': 'aviary-sdk-key.s3cret-b' } } }, 'headers');
    app.log.info({ body: { token: 's3cret-c', name: 'x' }, sdkKeys: { production: 's3cret-d' }, adminToken: 's3cret-e' }, 'body');
    app.log.info({ created: { token: 's3cret-f' } }, 'nested');
    await app.close();
    const explicit = out.join('');
    expect(explicit).toContain('[redacted]');
    expect(explicit).not.toMatch(/s3cret/);
  });

  it('masks credential-like query parameters in logged URLs', () => {
    expect(redactUrl('/sdk/v1/stream?since=4&token=abc&apiKey=def')).toBe('/sdk/v1/stream?since=4&token=[redacted]&apiKey=[redacted]');
    expect(redactUrl('/api/v1/audit?flag=a&limit=5')).toBe('/api/v1/audit?flag=a&limit=5');
    expect(redactUrl('/x?%E0=1&auth')).toBe('/x?%E0=1&auth');
    expect(redactUrl('/hooks/v1/triggers/Abc_-123?x=1')).toBe('/hooks/v1/triggers/[redacted]?x=1');
  });
});
