/**
 * Triggers (CONTRACT §13) end to end: a real server, the real SDK, and trigger URLs called the way Alertmanager,
 * Grafana and Datadog call them (their JSON payloads), or with no body at all.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { loggerOptions } from '../../server/ops/logging.js';
import { api, request, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
let a: ReturnType<typeof api>;
let sdk: AviaryClient | undefined;

const ON = { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } };
const base = (key: string, env = 'production') => `/api/v1/flags/${key}/environments/${env}`;

/** Alertmanager's webhook_configs payload (version 4), one firing alert. */
const ALERTMANAGER = {
  version: '4',
  groupKey: '{}:{alertname="CheckoutErrors"}',
  truncatedAlerts: 0,
  status: 'firing',
  receiver: 'aviary-kill-checkout',
  groupLabels: { alertname: 'CheckoutErrors' },
  commonLabels: { alertname: 'CheckoutErrors', severity: 'critical' },
  commonAnnotations: { summary: 'checkout error rate above 5%' },
  externalURL: 'http://alertmanager:9093',
  alerts: [
    {
      status: 'firing',
      labels: { alertname: 'CheckoutErrors', severity: 'critical' },
      annotations: { summary: 'checkout error rate above 5%' },
      startsAt: '2026-12-06T10:00:00Z',
      endsAt: '0001-01-01T00:00:00Z',
      generatorURL: 'http://prometheus:9090/graph',
      fingerprint: 'c0ffee',
    },
  ],
};

/** Grafana's webhook contact point payload. */
const GRAFANA = {
  receiver: 'aviary',
  status: 'firing',
  orgId: 1,
  alerts: [{ status: 'firing', labels: { alertname: 'Checkout latency' }, annotations: {}, fingerprint: 'abc' }],
  groupLabels: { alertname: 'Checkout latency' },
  commonLabels: { alertname: 'Checkout latency' },
  externalURL: 'http://grafana:3000/',
  version: '1',
  groupKey: '{}:{alertname="Checkout latency"}',
  truncatedAlerts: 0,
  title: '[FIRING:1] Checkout latency',
  state: 'alerting',
  message: '**Firing**\n\nValue: A=2.3',
};

/** Datadog's webhook integration default payload. */
const DATADOG = {
  body: 'checkout.errors > 5%',
  last_updated: '1765015200000',
  event_type: 'query_alert_monitor',
  title: '[Triggered on {env:prod}] Checkout errors',
  date: '1765015200000',
  org: { id: '123', name: 'Acme' },
  id: '42',
};

async function newFlag(key: string): Promise<void> {
  expect((await a.post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
  expect((await a.put(base(key), ON)).status).toBe(200);
}

async function createTrigger(key: string, action: 'kill' | 'revive', name: string): Promise<{ id: string; url: string; path: string }> {
  const res = await a.post(`${base(key)}/triggers`, { action, name });
  expect(res.status).toBe(201);
  const url = new URL(res.body.url);
  return { id: res.body.id, url: res.body.url, path: url.pathname };
}

async function connect(): Promise<AviaryClient> {
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
  await sdk.ready();
  return sdk;
}

function changeOf(client: AviaryClient, key: string): Promise<void> {
  return new Promise<void>((resolve) => client.on('change', (keys: string[]) => keys.includes(key) && resolve()));
}

/** Waits until the SDK evaluates `key` to `value` (it streams every change). */
async function sees(client: AviaryClient, key: string, value: boolean): Promise<void> {
  await vi.waitFor(() => expect(client.variation(key, { key: 'u1' }, !value)).toBe(value), { timeout: 5000, interval: 10 });
}

/** POSTs raw bytes to a trigger URL, without any Authorization header. */
function fire(path: string, body?: string, contentType?: string) {
  return request(srv, 'POST', path, {
    token: null,
    ...(body !== undefined ? { body } : {}),
    headers: contentType ? { 'content-type': contentType } : {},
  });
}

/** POSTs a trigger creation with headers fetch will not send (Host), through node:http. */
function rawPost(server: TestServer, path: string, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  const payload = JSON.stringify({ action: 'kill', name: 'origin' });
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      server.url + path,
      {
        method: 'POST',
        headers: {
          ...headers,
          authorization: `Bearer ${server.adminToken}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

beforeAll(async () => {
  srv = await startServer({ triggers: { perMinute: 5 }, authFailures: { limit: 5, windowMs: 60_000 } });
  a = api(srv);
});
afterEach(async () => {
  await sdk?.close();
  sdk = undefined;
});
afterAll(async () => {
  await srv?.close();
});

describe('triggers', () => {
  it('create answers the URL once; list shows the trigger without its secret', async () => {
    await newFlag('listed');
    const res = await a.post(`${base('listed')}/triggers`, { action: 'kill', name: 'alertmanager-checkout' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      flag: 'listed',
      environment: 'production',
      action: 'kill',
      name: 'alertmanager-checkout',
      lastFiredAt: null,
      fired: 0,
    });
    expect(res.body.url).toMatch(new RegExp(`^${srv.url}/hooks/v1/triggers/[A-Za-z0-9_-]{43}$`));
    const secret = res.body.url.split('/').pop();
    const list = await a.get(`${base('listed')}/triggers`);
    expect(list.status).toBe(200);
    expect(list.body.triggers).toHaveLength(1);
    expect(list.body.triggers[0]).toMatchObject({ id: res.body.id, name: 'alertmanager-checkout', action: 'kill', fired: 0 });
    expect(JSON.stringify(list.body)).not.toContain(secret);
    expect(list.body.triggers[0].url).toBeUndefined();
    // Stored as its SHA-256 only.
    const rows = await srv.app.store.all<{ hash: string }>('SELECT hash FROM triggers WHERE id = ?', [res.body.id]);
    expect(rows[0]!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(rows[0]!.hash).not.toContain(secret);
  });

  it('the URL honours the Host header, and X-Forwarded-* only from a trusted proxy', async () => {
    await newFlag('origin');
    const direct = await rawPost(srv, `${base('origin')}/triggers`, {
      host: 'flags.example.com:8443',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'https',
    });
    expect(direct.status).toBe(201);
    expect(direct.body.url).toMatch(/^http:\/\/flags\.example\.com:8443\/hooks\/v1\/triggers\/[A-Za-z0-9_-]{43}$/);
    const proxied = await startServer({ trustProxy: '127.0.0.1' });
    try {
      await api(proxied).post('/api/v1/flags', { key: 'flagp', kind: 'boolean' });
      const created = await rawPost(proxied, `${base('flagp')}/triggers`, { 'x-forwarded-host': 'aviary.example.com', 'x-forwarded-proto': 'https' });
      expect(created.status).toBe(201);
      expect(created.body.url).toMatch(/^https:\/\/aviary\.example\.com\/hooks\/v1\/triggers\//);
    } finally {
      await proxied.close();
    }
  });

  it('an Alertmanager payload kills the flag: the SDK switches, the audit names the trigger and the alert', async () => {
    await newFlag('checkout');
    const client = await connect();
    expect(client.variation('checkout', { key: 'u1' }, false)).toBe(true);
    const t = await createTrigger('checkout', 'kill', 'alertmanager-checkout');
    const switched = changeOf(client, 'checkout');
    const res = await fire(t.path, JSON.stringify(ALERTMANAGER), 'application/json');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ trigger: 'alertmanager-checkout', flag: 'checkout', environment: 'production', action: 'kill', changed: true });
    expect(res.body.environmentVersion).toBe((await a.get('/api/v1/environments/production')).body.version);
    await switched;
    expect(client.variation('checkout', { key: 'u1' }, true)).toBe(false);

    const state = (await a.get(base('checkout'))).body;
    expect(state.enabled).toBe(false);
    expect(state.killReason).toBe('Alertmanager firing: CheckoutErrors');
    const audit = await a.get('/api/v1/audit?flag=checkout&action=flag.kill');
    expect(audit.body.entries[0]).toMatchObject({
      action: 'flag.kill',
      actor: { tokenId: null, name: 'trigger:alertmanager-checkout' },
      reason: 'Alertmanager firing: CheckoutErrors',
    });

    const listed = (await a.get(`${base('checkout')}/triggers`)).body.triggers[0];
    expect(listed.fired).toBe(1);
    expect(listed.lastFiredAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    // Firing again is idempotent (already off): answered, nothing written.
    const again = await fire(
      t.path,
      JSON.stringify({ ...ALERTMANAGER, alerts: [ALERTMANAGER.alerts[0], ALERTMANAGER.alerts[0]] }),
      'application/json',
    );
    expect(again.status).toBe(200);
    expect(again.body.changed).toBe(false);
  });

  it('a Grafana payload, a Datadog payload, an empty body and a non-JSON body all kill', async () => {
    const cases: Array<[string, string | undefined, string | undefined, string | null]> = [
      ['grafana', JSON.stringify(GRAFANA), 'application/json', '[FIRING:1] Checkout latency'],
      ['datadog', JSON.stringify(DATADOG), 'application/json', '[Triggered on {env:prod}] Checkout errors'],
      ['empty', undefined, undefined, null],
      ['emptyjson', '', 'application/json', null],
      ['text', 'ALERT\u0000 disk\n\nfull', 'text/plain', 'ALERT disk full'],
      ['badjson', '{"title": ', 'application/json', '{"title":'],
      ['form', 'a=1&b=2', 'application/x-www-form-urlencoded', 'a=1&b=2'],
      ['vendor', '{"title":"T"}', 'application/vnd.example+json; charset=utf-8', 'T'],
      [
        'pagerduty',
        JSON.stringify({ event: { event_type: 'incident.triggered', data: { title: 'Checkout down' } } }),
        'application/json',
        'PagerDuty incident.triggered: Checkout down',
      ],
    ];
    const client = await connect();
    for (const [name, body, type, reason] of cases) {
      const key = `k-${name}`;
      await newFlag(key);
      const t = await createTrigger(key, 'kill', name);
      await sees(client, key, true);
      const res = await fire(t.path, body, type);
      expect(res.status, name).toBe(200);
      expect(res.body.changed, name).toBe(true);
      await sees(client, key, false);
      expect((await a.get(base(key))).body.killReason, name).toBe(reason);
    }
  });

  it('a long body is summarized to 200 characters; a body over 1 MiB is refused with 413 and changes nothing', async () => {
    await newFlag('long');
    const t = await createTrigger('long', 'kill', 'long');
    const big = `{"x":"${'a'.repeat(1024 * 1024)}"}`;
    const refused = await fire(t.path, big, 'application/json');
    expect(refused.status).toBe(413);
    expect((await a.get(base('long'))).body.enabled).toBe(true);
    const res = await fire(t.path, 'b'.repeat(5000), 'text/plain');
    expect(res.status).toBe(200);
    expect((await a.get(base('long'))).body.killReason).toHaveLength(200);
  });

  it('a trigger of an archived flag answers 409 and changes nothing', async () => {
    await newFlag('archived');
    const t = await createTrigger('archived', 'kill', 'late');
    expect((await a.patch('/api/v1/flags/archived', { archived: true })).status).toBe(200);
    const res = await fire(t.path, '{}', 'application/json');
    expect(res.status).toBe(409);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await a.get(base('archived'))).body.enabled).toBe(true);
    expect((await a.get(`${base('archived')}/triggers`)).body.triggers[0].fired).toBe(0);
  });

  it('a revive trigger revives the flag', async () => {
    await newFlag('revived');
    const client = await connect();
    expect((await a.post(`${base('revived')}/kill`, { reason: 'incident' })).status).toBe(200);
    const t = await createTrigger('revived', 'revive', 'alertmanager-resolved');
    await sees(client, 'revived', false);
    const res = await fire(t.path, JSON.stringify({ ...ALERTMANAGER, status: 'resolved' }), 'application/json');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ action: 'revive', changed: true });
    await sees(client, 'revived', true);
    const audit = await a.get('/api/v1/audit?flag=revived&action=flag.revive');
    expect(audit.body.entries[0]).toMatchObject({
      actor: { name: 'trigger:alertmanager-resolved' },
      reason: 'Alertmanager resolved: CheckoutErrors',
    });
  });

  it('a wrong secret, and a deleted trigger, answer 404 and change nothing; delete is audited', async () => {
    await newFlag('guarded');
    const t = await createTrigger('guarded', 'kill', 'to-delete');
    const before = (await a.get('/api/v1/environments/production')).body.version;
    const wrong = await fire(`/hooks/v1/triggers/${'A'.repeat(43)}`, JSON.stringify(ALERTMANAGER), 'application/json');
    expect(wrong.status).toBe(404);
    expect(wrong.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await fire('/hooks/v1/triggers/x')).status).toBe(404);

    const deleted = await a.delete(`${base('guarded')}/triggers/${t.id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({ id: t.id, name: 'to-delete' });
    expect((await a.delete(`${base('guarded')}/triggers/${t.id}`)).status).toBe(404);
    expect((await fire(t.path, '')).status).toBe(404);
    expect((await a.get(base('guarded'))).body.enabled).toBe(true);
    expect((await a.get('/api/v1/environments/production')).body.version).toBe(before);
    expect((await a.get(`${base('guarded')}/triggers`)).body.triggers).toEqual([]);

    const audit = await a.get('/api/v1/audit?resourceType=trigger');
    const actions = audit.body.entries.filter((e: { resourceKey: string }) => e.resourceKey === t.id).map((e: { action: string }) => e.action);
    expect(actions).toEqual(['trigger.delete', 'trigger.create']);
  });

  it('wrong secrets count as failed authentications of the address: past the limit they get 429, a valid one still fires', async () => {
    const own = await startServer({ authFailures: { limit: 3, windowMs: 60_000 } });
    try {
      const o = api(own);
      await o.post('/api/v1/flags', { key: 'f', kind: 'boolean' });
      await o.put(base('f'), ON);
      const created = await o.post(`${base('f')}/triggers`, { action: 'kill', name: 'n' });
      const guess = () => request(own, 'POST', `/hooks/v1/triggers/guess-${Math.random()}`, { token: null });
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await guess()).status);
      expect(statuses).toEqual([404, 404, 404, 429, 429]);
      const limited = await guess();
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      const valid = await request(own, 'POST', new URL(created.body.url).pathname, { token: null });
      expect(valid.status).toBe(200);
      expect(valid.body.changed).toBe(true);
    } finally {
      await own.close();
    }
  });

  it('the secret never reaches the server log (the path is redacted)', async () => {
    const lines: string[] = [];
    const logged = await startServer({ logger: loggerOptions('trace', { write: (l: string) => void lines.push(l) }) });
    try {
      const o = api(logged);
      await o.post('/api/v1/flags', { key: 'f', kind: 'boolean' });
      const created = await o.post(`${base('f')}/triggers`, { action: 'kill', name: 'n' });
      const path = new URL(created.body.url).pathname;
      const secret = path.split('/').pop()!;
      expect((await request(logged, 'POST', path, { token: null, body: '{}' })).status).toBe(200);
      expect((await request(logged, 'POST', `${path}x`, { token: null })).status).toBe(404);
      const log = lines.join('');
      expect(log).toContain('/hooks/v1/triggers/[redacted]');
      expect(log).not.toContain(secret);
    } finally {
      await logged.close();
    }
  });

  it('one trigger fires at most perMinute times a minute (then 429 with Retry-After); others are not affected', async () => {
    await newFlag('limited');
    const t = await createTrigger('limited', 'kill', 'noisy');
    const other = await createTrigger('limited', 'revive', 'other');
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await fire(t.path)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    const limited = await fire(t.path);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect((await fire(other.path)).status).toBe(200);
    expect((await a.get(`${base('limited')}/triggers`)).body.triggers.find((x: { id: string }) => x.id === t.id).fired).toBe(5);
  });

  it('bad input on create answers 400 naming the field, and creates nothing; unknown flag or environment 404', async () => {
    await newFlag('bad');
    const cases: Array<[unknown, string]> = [
      [{ action: 'explode', name: 'x' }, '/action'],
      [{ name: 'x' }, '/action'],
      [{ action: 'kill' }, '/name'],
      [{ action: 'kill', name: '' }, '/name'],
      [{ action: 'kill', name: '   ' }, '/name'],
      [{ action: 'kill', name: 'x'.repeat(201) }, '/name'],
      [{ action: 'kill', name: 'x', extra: 1 }, '/extra'],
    ];
    for (const [body, path] of cases) {
      const res = await a.post(`${base('bad')}/triggers`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(JSON.stringify(res.body.errors), JSON.stringify(body)).toContain(path);
    }
    expect((await a.post('/api/v1/flags/nope/environments/production/triggers', { action: 'kill', name: 'x' })).status).toBe(404);
    expect((await a.post(`${base('bad', 'nope')}/triggers`, { action: 'kill', name: 'x' })).status).toBe(404);
    expect((await a.get(`${base('bad')}/triggers`)).body.triggers).toEqual([]);
    // The admin routes need a token; the hook route never does.
    expect((await request(srv, 'GET', `${base('bad')}/triggers`, { token: null })).status).toBe(401);
  });
});
