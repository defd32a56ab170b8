import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { freePort, startServerProcess } from '../stream/server-process.js';
import { startReceiver, type Receiver } from './receiver.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function setup(options: Parameters<typeof startServer>[0] = {}): Promise<{ srv: TestServer; rx: Receiver }> {
  const srv = await startServer({ webhooks: { pollMs: 50, retryDelaysMs: [50, 50, 50] }, ...options });
  const rx = await startReceiver();
  cleanup.push(
    () => srv.close(),
    () => rx.close(),
  );
  expect((await api(srv).post('/api/v1/flags', { key: 'checkout-v2', kind: 'boolean' })).status).toBe(201);
  // New flags start off: turn it on where the tests kill it (before any webhook exists).
  for (const env of ['production', 'staging'])
    expect((await api(srv).post(`/api/v1/flags/checkout-v2/environments/${env}/revive`, {})).status).toBe(200);
  return { srv, rx };
}

const waitUntil = async (check: () => Promise<boolean>, timeoutMs = 5000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe('outbound webhooks', () => {
  it('a kill is delivered as a signed Standard Webhooks POST with the §13 body', async () => {
    const { srv, rx } = await setup();
    const a = api(srv);
    const created = await a.post('/api/v1/webhooks', { url: rx.url, events: ['flag.killed'], name: 'ops' });
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9+/=]+$/);
    const listed = await a.get('/api/v1/webhooks');
    expect(listed.body.webhooks).toHaveLength(1);
    expect(listed.body.webhooks[0].secret).toBeUndefined();
    expect((await a.get(`/api/v1/webhooks/${created.body.id}`)).body.secret).toBeUndefined();

    expect((await a.post('/api/v1/flags/checkout-v2/environments/production/kill', { reason: 'checkout 500s' })).status).toBe(200);
    const [got] = await rx.waitFor(1);
    const verified = new Webhook(created.body.secret).verify(got!.body, {
      'webhook-id': String(got!.headers['webhook-id']),
      'webhook-timestamp': String(got!.headers['webhook-timestamp']),
      'webhook-signature': String(got!.headers['webhook-signature']),
    }) as any;
    expect(verified.type).toBe('flag.killed');
    expect(verified.data).toMatchObject({
      environment: 'production',
      flag: 'checkout-v2',
      reason: 'checkout 500s',
      actor: { name: expect.any(String) },
    });
    expect(verified.data.version).toEqual(expect.any(Number));
    expect(verified.data.before.enabled).not.toBe(false);
    expect(verified.data.after.enabled).toBe(false);
    expect(() => new Webhook(`whsec_${Buffer.alloc(32, 1).toString('base64')}`).verify(got!.body, got!.headers as any)).toThrow();
    // Not subscribed to revivals: a revive sends nothing.
    await a.post('/api/v1/flags/checkout-v2/environments/production/revive', {});
    await waitUntil(async () => (await a.get(`/api/v1/webhooks/${created.body.id}/deliveries`)).body.deliveries[0].status === 'delivered');
    await new Promise((r) => setTimeout(r, 200));
    expect(rx.received).toHaveLength(1);
    const log = (await a.get(`/api/v1/webhooks/${created.body.id}/deliveries`)).body.deliveries;
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ status: 'delivered', attempts: 1, lastStatusCode: 200, eventId: got!.headers['webhook-id'], type: 'flag.killed' });
  });

  it('retries a failing receiver with the same webhook-id until a 2xx; the log shows the attempts', async () => {
    const { srv, rx } = await setup();
    const a = api(srv);
    rx.respond = (n) => (n < 2 ? 503 : 204);
    const hook = (await a.post('/api/v1/webhooks', { url: rx.url, events: ['flag.killed', 'flag.revived'], environments: ['production'] })).body;
    await a.post('/api/v1/flags/checkout-v2/environments/staging/kill', { reason: 'other env' });
    await a.post('/api/v1/flags/checkout-v2/environments/production/kill', { reason: 'r' });
    await rx.waitFor(3);
    await waitUntil(async () => (await a.get(`/api/v1/webhooks/${hook.id}/deliveries`)).body.deliveries[0].status === 'delivered');
    await new Promise((r) => setTimeout(r, 200));
    expect(rx.received).toHaveLength(3);
    expect(new Set(rx.received.map((x) => x.headers['webhook-id'])).size).toBe(1);
    const [d] = (await a.get(`/api/v1/webhooks/${hook.id}/deliveries`)).body.deliveries;
    expect(d).toMatchObject({ status: 'delivered', attempts: 3, lastStatusCode: 204, lastError: null });
    expect(JSON.parse(rx.received[0]!.body).data.environment).toBe('production');
  });

  it('gives up after the retry schedule, and disables a webhook after 5 given-up deliveries in a row', async () => {
    const { srv, rx } = await setup({ webhooks: { pollMs: 20, retryDelaysMs: [10] } });
    const a = api(srv);
    rx.respond = () => 500;
    const hook = (await a.post('/api/v1/webhooks', { url: rx.url, events: ['flag.killed', 'flag.revived'] })).body;
    for (let i = 0; i < 3; i++) {
      await a.post('/api/v1/flags/checkout-v2/environments/production/kill', {});
      await a.post('/api/v1/flags/checkout-v2/environments/production/revive', {});
    }
    await waitUntil(async () => (await a.get(`/api/v1/webhooks/${hook.id}`)).body.enabled === false);
    const got = (await a.get(`/api/v1/webhooks/${hook.id}`)).body;
    expect(got.disabledReason).toMatch(/5 deliveries in a row/);
    await waitUntil(async () => (await a.get(`/api/v1/webhooks/${hook.id}/deliveries`)).body.deliveries.every((d: any) => d.status !== 'pending'));
    const log = (await a.get(`/api/v1/webhooks/${hook.id}/deliveries`)).body.deliveries;
    expect(log.filter((d: any) => d.status === 'failed').length).toBeGreaterThanOrEqual(5);
    expect(log.find((d: any) => d.status === 'failed')).toMatchObject({ attempts: 2, lastStatusCode: 500, lastError: 'answered 500' });
    // Disabled: a kill now produces nothing, and neither does a test event.
    const before = rx.received.length;
    await a.post('/api/v1/flags/checkout-v2/environments/production/kill', {});
    expect((await a.post(`/api/v1/webhooks/${hook.id}/test`)).status).toBe(409);
    await new Promise((r) => setTimeout(r, 300));
    expect(rx.received.length).toBe(before);
    // Re-enabled: the failure count is reset and events flow again.
    rx.respond = () => 200;
    const enabled = (await a.patch(`/api/v1/webhooks/${hook.id}`, { enabled: true })).body;
    expect(enabled).toMatchObject({ enabled: true, failures: 0, disabledReason: null });
    await a.post('/api/v1/flags/checkout-v2/environments/production/revive', {});
    await rx.waitFor(before + 1);
    expect(JSON.parse(rx.received.at(-1)!.body).type).toBe('flag.revived');
  });

  it('the test event, the Slack format, PATCH and DELETE', async () => {
    const { srv, rx } = await setup();
    const a = api(srv);
    const hook = (await a.post('/api/v1/webhooks', { url: rx.url, events: ['flag.killed'], format: 'slack' })).body;
    const t = await a.post(`/api/v1/webhooks/${hook.id}/test`);
    expect(t.status).toBe(202);
    expect(t.body).toMatchObject({ type: 'webhook.test', status: 'pending' });
    await rx.waitFor(1);
    expect(JSON.parse(rx.received[0]!.body).text).toMatch(/test event/);
    await a.post('/api/v1/flags/checkout-v2/environments/production/kill', { reason: 'checkout 500s' });
    await rx.waitFor(2);
    expect(JSON.parse(rx.received[1]!.body)).toEqual({
      text: `checkout-v2 killed in production by ${JSON.parse(rx.received[0]!.body).text.split(' by ')[1]}: checkout 500s`,
    });
    const patched = await a.patch(`/api/v1/webhooks/${hook.id}`, { name: 'renamed', events: ['flag.revived'] });
    expect(patched.body).toMatchObject({ name: 'renamed', events: ['flag.revived'] });
    expect((await a.delete(`/api/v1/webhooks/${hook.id}`)).status).toBe(204);
    expect((await a.get(`/api/v1/webhooks/${hook.id}`)).status).toBe(404);
    await a.post('/api/v1/flags/checkout-v2/environments/production/revive', {});
    await new Promise((r) => setTimeout(r, 200));
    expect(rx.received).toHaveLength(2);
  });

  it('bad input is a 400 naming the field, and creates nothing', async () => {
    const { srv } = await setup();
    const a = api(srv);
    for (const [body, path] of [
      [{ url: 'ftp://x/y', events: ['flag.killed'] }, '/url'],
      [{ url: 'not a url', events: ['flag.killed'] }, '/url'],
      [{ url: 'http://x/y', events: ['flag.exploded'] }, '/events/0'],
      [{ url: 'http://x/y', events: [] }, '/events'],
      [{ events: ['flag.killed'] }, 'url'],
    ] as const) {
      const res = await a.post('/api/v1/webhooks', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/problem\+json/);
      expect(JSON.stringify(res.body)).toContain(path);
    }
    expect((await a.get('/api/v1/webhooks')).body.webhooks).toEqual([]);
    expect((await a.patch('/api/v1/webhooks/nope', { enabled: true })).status).toBe(404);
  });

  it('an event not yet delivered when the server is SIGKILLed is delivered after the restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aviary-hooks-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const dbPath = join(dir, 'a.db');
    const rxPort = await freePort();
    const port = await freePort();
    let proc = await startServerProcess(port, dbPath);
    cleanup.push(() => proc.crash());
    const a = api(proc);
    expect((await a.post('/api/v1/flags', { key: 'checkout-v2', kind: 'boolean' })).status).toBe(201);
    expect((await a.post('/api/v1/flags/checkout-v2/environments/production/revive', {})).status).toBe(200);
    const hook = (await a.post('/api/v1/webhooks', { url: `http://127.0.0.1:${rxPort}/hook`, events: ['flag.killed'] })).body;
    // The receiver is not listening yet: the first attempt fails.
    expect((await a.post('/api/v1/flags/checkout-v2/environments/production/kill', { reason: 'down' })).status).toBe(200);
    await waitUntil(async () => (await a.get(`/api/v1/webhooks/${hook.id}/deliveries`)).body.deliveries[0]?.attempts === 1);
    expect((await a.get(`/api/v1/webhooks/${hook.id}/deliveries`)).body.deliveries[0]).toMatchObject({
      status: 'pending',
      lastError: expect.any(String),
    });
    await proc.crash();
    const rx = await startReceiver(rxPort);
    cleanup.push(() => rx.close());
    proc = await startServerProcess(port, dbPath);
    const [got] = await rx.waitFor(1, 15_000);
    expect(JSON.parse(got!.body)).toMatchObject({ type: 'flag.killed', data: { flag: 'checkout-v2', reason: 'down' } });
  }, 30_000);
});
