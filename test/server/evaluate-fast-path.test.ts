/**
 * `POST /sdk/v1/evaluate` has two paths: the fast path in front of fastify (server/sdk/evaluate-fast-path.ts) for the
 * plain case, and the fastify route for everything else. A query string sends a request the fastify way, so each
 * body below is sent both ways: same status, content type and bytes. Requests the fast path must leave to fastify
 * (auth failures, other content types, debug logging, a blocked address) are checked to go there.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loggerOptions } from '../../server/ops/logging.js';
import { fastPathServed } from '../../server/sdk/evaluate-fast-path.js';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { logSink } from '../helpers/log-sink.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer();
  const a = api(srv);
  await a.post('/api/v1/segments', { key: 'staff', included: ['u-staff'], rules: [] });
  await a.post('/api/v1/flags', { key: 'banner', kind: 'string', variants: [{ key: 'red', value: 'Red "bold"' }, { key: 'blue', value: 'Blue' }] });
  await a.put('/api/v1/flags/banner/environments/production', {
    enabled: true,
    offVariant: 'blue',
    targets: [{ variant: 'red', keys: ['vip'] }],
    rules: [{ id: 'staff', conditions: [{ segment: 'staff' }], serve: { variant: 'red' } }],
    fallthrough: { rollout: { weights: [{ variant: 'red', percent: 30 }, { variant: 'blue', percent: 70 }] } },
  });
  await a.post('/api/v1/flags', { key: 'limits', kind: 'json', variants: [{ key: 'default', value: { max: 10, tags: ['a', 'ü'] } }, { key: 'off', value: null }] });
  await a.put('/api/v1/flags/limits/environments/production', { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'default' } });
  await a.post('/api/v1/flags', { key: '42', kind: 'boolean' });
});
afterAll(async () => {
  await srv.close();
});

interface Raw {
  status: number;
  type: string | null;
  text: string;
}

async function send(path: string, body: string, headers: Record<string, string> = {}, token: string | null = srv.sdkKeys.production): Promise<Raw> {
  const res = await fetch(srv.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body,
  });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

/** Sends `body` the fast way and the fastify way; returns both answers and whether the fast path took the first. */
async function bothWays(body: string, headers: Record<string, string> = {}) {
  const before = fastPathServed(srv.app.server);
  const fast = await send('/sdk/v1/evaluate', body, headers);
  const tookFast = fastPathServed(srv.app.server) === before + 1;
  const slow = await send('/sdk/v1/evaluate?via=fastify', body, headers);
  expect(fastPathServed(srv.app.server)).toBe(before + 1);
  return { fast, slow, tookFast };
}

describe('the evaluate fast path answers exactly as the fastify route does', () => {
  it.each([
    ['every flag', JSON.stringify({ context: { key: 'user-42', country: 'NL' } })],
    ['a target', JSON.stringify({ context: { key: 'vip' }, flags: ['banner'] })],
    ['a segment rule', JSON.stringify({ context: { key: 'u-staff' } })],
    ['unknown and repeated keys', JSON.stringify({ context: { key: 'u' }, flags: ['nope', 'limits', 'nope', '42', 'limits'] })],
    ['array attributes and unicode', JSON.stringify({ context: { key: 'ü-ser', groups: ['a', 'b'], n: 1.5, ok: true } })],
    // About 200 KB: arrives in several chunks, with multi-byte characters across chunk boundaries. (The context stays
    // within its evaluation budget, docs/operations.md; the bulk is in the list of flag keys.)
    ['a large body', JSON.stringify({ context: { key: 'big', tags: Array.from({ length: 20 }, (_, i) => `${i}-${'ü€𝄞'.repeat(10)}`) }, flags: Array.from({ length: 400 }, (_, i) => `k-${i}-${'ü€𝄞'.repeat(50)}`) })],
  ])('200 for %s', async (_name, body) => {
    const { fast, slow, tookFast } = await bothWays(body);
    expect(tookFast).toBe(true);
    expect(fast.status).toBe(200);
    expect(fast).toEqual(slow);
    expect(JSON.parse(fast.text)).toMatchObject({ environment: 'production', version: expect.any(Number) });
  });

  it.each([
    ['malformed JSON', '{"context": {"key": '],
    ['prototype poisoning', '{"context": {"key": "u"}, "__proto__": {"admin": true}}'],
    ['a missing context', '{}'],
    ['a nested attribute', JSON.stringify({ context: { key: 'u', nested: { a: 1 } } })],
    ['flags of the wrong type', JSON.stringify({ context: { key: 'u' }, flags: 'banner' })],
    ['an unknown property', JSON.stringify({ context: { key: 'u' }, extra: 1 })],
    ['a JSON array', '[1, 2]'],
  ])('the same problem document for %s', async (_name, body) => {
    const { fast, slow, tookFast } = await bothWays(body);
    expect(tookFast).toBe(true);
    expect(fast.status).toBe(400);
    expect(fast.type).toBe('application/problem+json; charset=utf-8');
    const doc = JSON.parse(fast.text) as { type: string; instance: string; detail: string };
    expect(doc.instance).toBe('/sdk/v1/evaluate');
    expect(doc.detail.length).toBeGreaterThan(0);
    expect(fast).toEqual(slow);
  });

  it('accepts a charset on the JSON content type', async () => {
    const { fast, slow, tookFast } = await bothWays(JSON.stringify({ context: { key: 'vip' } }), { 'content-type': 'application/json; charset=utf-8' });
    expect(tookFast).toBe(true);
    expect(fast).toEqual(slow);
  });

  it('counts its requests in the route metrics', async () => {
    const metrics = async () => {
      const text = await (await fetch(`${srv.url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith('aviary_http_requests_total{') && l.includes('route="/sdk/v1/evaluate"') && l.includes('status="200"'));
      return Number(line?.split(' ').at(-1) ?? 0);
    };
    const before = await metrics();
    const served = fastPathServed(srv.app.server);
    await send('/sdk/v1/evaluate', JSON.stringify({ context: { key: 'a' } }));
    await send('/sdk/v1/evaluate', JSON.stringify({ context: { key: 'b' } }));
    expect(fastPathServed(srv.app.server)).toBe(served + 2);
    expect(await metrics()).toBe(before + 2);
  });
});

describe('what the fast path leaves to fastify', () => {
  it.each([
    ['no key', null, {}, 401],
    ['an unknown key', 'nope-nope-nope', {}, 401],
    ['an admin token', 'ADMIN', {}, 403],
    ['a key of another environment asking for production', 'STAGING', {}, 200],
    ['a form body', 'PROD', { 'content-type': 'application/x-www-form-urlencoded' }, 415],
    ['a text body (not a media type the SDK API takes)', 'PROD', { 'content-type': 'text/plain' }, 415],
  ] as const)('%s', async (_name, token, headers, status) => {
    const key = token === 'ADMIN' ? srv.adminToken : token === 'STAGING' ? srv.sdkKeys.staging : token === 'PROD' ? srv.sdkKeys.production : token;
    const before = fastPathServed(srv.app.server);
    const res = await send('/sdk/v1/evaluate', JSON.stringify({ context: { key: 'u' } }), headers, key);
    expect(res.status).toBe(status);
    if (status !== 200) expect(res.type).toContain('application/problem+json');
    // A staging key is fine (it evaluates staging); the others go to fastify, which answers the failure.
    expect(fastPathServed(srv.app.server)).toBe(before + (status === 200 ? 1 : 0));
    if (status === 200) expect(JSON.parse(res.text).environment).toBe('staging');
  });

  it('a revoked key gets the 401 from fastify', async () => {
    const created = await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'short-lived' });
    const key = created.body.token as string;
    expect((await send('/sdk/v1/evaluate', JSON.stringify({ context: { key: 'u' } }), {}, key)).status).toBe(200);
    expect((await api(srv).delete(`/api/v1/tokens/${created.body.id}`)).status).toBe(200);
    const before = fastPathServed(srv.app.server);
    const res = await send('/sdk/v1/evaluate', JSON.stringify({ context: { key: 'u' } }), {}, key);
    expect(res.status).toBe(401);
    expect(JSON.parse(res.text).detail).toMatch(/revoked/);
    expect(fastPathServed(srv.app.server)).toBe(before);
  });
});

describe('logging and rate limits', () => {
  let other: TestServer | undefined;
  afterEach(async () => {
    await other?.close();
    other = undefined;
    delete process.env.AVIARY_SLOW_REQUEST_MS;
    delete process.env.AVIARY_AUTH_FAILURE_LIMIT;
  });

  it('a slow request is warned about as the ops plugin does, with no secret in the log', async () => {
    process.env.AVIARY_SLOW_REQUEST_MS = '0.000001';
    const log = logSink();
    other = await startServer({ logger: loggerOptions('info', log.stream) });
    const res = await fetch(`${other.url}/sdk/v1/evaluate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${other.sdkKeys.production}`, 'content-type': 'application/json' },
      body: JSON.stringify({ context: { key: 'u' } }),
    });
    expect(res.status).toBe(200);
    expect(fastPathServed(other.app.server)).toBe(1);
    const warned = log.lines().filter((l) => l.msg === 'slow request');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, req: { method: 'POST', url: '/sdk/v1/evaluate', route: '/sdk/v1/evaluate' }, res: { statusCode: 200 } });
    expect(JSON.stringify(log.lines())).not.toContain(other.sdkKeys.production);
  });

  it('at debug level every request goes through fastify (and its request log line)', async () => {
    const log = logSink();
    other = await startServer({ logger: loggerOptions('debug', log.stream) });
    const res = await fetch(`${other.url}/sdk/v1/evaluate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${other.sdkKeys.production}`, 'content-type': 'application/json' },
      body: JSON.stringify({ context: { key: 'u' } }),
    });
    expect(res.status).toBe(200);
    expect(fastPathServed(other.app.server)).toBe(0);
    expect(log.lines().some((l) => l.msg === 'request completed')).toBe(true);
  });

  it('an address blocked for failed authentication is still served with a valid key', async () => {
    process.env.AVIARY_AUTH_FAILURE_LIMIT = '2';
    other = await startServer();
    const body = JSON.stringify({ context: { key: 'u' } });
    const post = (key: string) =>
      fetch(`${other!.url}/sdk/v1/evaluate`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
    for (let i = 0; i < 3; i++) await (await post('wrong-key-wrong-key')).arrayBuffer();
    const res = await post(other.sdkKeys.production);
    expect(res.status).toBe(200);
    expect((await post('wrong-key-wrong-key')).status).toBe(429);
  });
});
