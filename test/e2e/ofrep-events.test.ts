/**
 * OFREP change events (OFREP ADR-0008): the bulk evaluation advertises an SSE stream in `eventStreams`, the stream
 * sends `refetchEvaluation` on every change of the key's environment. Checked with the published
 * `@openfeature/ofrep-web-provider` (Node has no EventSource: `launchdarkly-eventsource`, a WHATWG-style one, stands in
 * for the browser's) and with raw HTTP for auth, limits and revocation.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { get, type IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { OpenFeature, ProviderEvents, type EventDetails } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
import { loggerOptions } from '../../server/ops/logging.js';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { checkoutAndBanner, kill, revive, until } from '../stream/fixtures.js';

const require = createRequire(import.meta.url);
const { EventSource: NodeEventSource } = require('launchdarkly-eventsource') as { EventSource: unknown };

let srv: TestServer | undefined;
const opened: IncomingMessage[] = [];
afterEach(async () => {
  for (const m of opened.splice(0)) m.destroy();
  await OpenFeature.close();
  delete (globalThis as { EventSource?: unknown }).EventSource;
  await srv?.close();
  srv = undefined;
});

const bulk = (s: TestServer, key = s.sdkKeys.production, headers: Record<string, string> = {}) =>
  fetch(`${s.url}/ofrep/v1/evaluate/flags`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ context: { targetingKey: 'vip' } }),
  });

/** The advertised stream URL of a key (from the bulk evaluation's `eventStreams`). */
async function streamUrl(s: TestServer, key = s.sdkKeys.production): Promise<string> {
  const res = await bulk(s, key);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { eventStreams: { type: string; endpoint: { requestUri: string }; inactivityDelaySec: number }[] };
  expect(body.eventStreams).toHaveLength(1);
  expect(body.eventStreams[0]).toMatchObject({ type: 'sse', inactivityDelaySec: 120 });
  return s.url + body.eventStreams[0]!.endpoint.requestUri;
}

/**
 * Opens a stream and collects its text. (node:http, not fetch: after an aborted body undici opens a spare connection,
 * which would hold the server's close until its timeout.)
 */
async function openStream(url: string, headers: Record<string, string> = {}) {
  const msg = await new Promise<IncomingMessage>((resolve, reject) => get(url, { headers }, resolve).on('error', reject));
  opened.push(msg);
  const state = { text: '', ended: false };
  msg.setEncoding('utf8');
  msg.on('data', (chunk: string) => (state.text += chunk));
  msg.on('end', () => (state.ended = true));
  msg.on('close', () => (state.ended = true));
  const res = {
    status: msg.statusCode!,
    headers: { get: (name: string) => (msg.headers[name.toLowerCase()] as string | undefined) ?? null },
    json: async () => {
      await until(() => state.ended, 'the body');
      return JSON.parse(state.text) as Record<string, unknown>;
    },
  };
  const events = () =>
    state.text
      .split('\n\n')
      .filter((b) => b.startsWith('data: '))
      .map((b) => JSON.parse(b.slice(6)) as { type: string; etag?: string });
  return { res, state, events, close: () => msg.destroy() };
}

describe('OFREP change events', () => {
  it('the published web provider gets a kill by push, long before its 60 s poll', async () => {
    srv = await startServer();
    await checkoutAndBanner(srv);
    (globalThis as { EventSource?: unknown }).EventSource = NodeEventSource;
    const provider = new OFREPWebProvider({
      baseUrl: srv.url,
      headers: [['Authorization', `Bearer ${srv.sdkKeys.production}`]],
      pollInterval: 60_000,
      cacheMode: 'disabled',
    } as never);
    await OpenFeature.setContext({ targetingKey: 'vip' });
    await OpenFeature.setProviderAndWait(provider);
    const of = OpenFeature.getClient();
    expect(of.getBooleanValue('new-checkout', false)).toBe(true);
    const changes: EventDetails[] = [];
    of.addHandler(ProviderEvents.ConfigurationChanged, (d) => changes.push(d!));
    // The provider opened the advertised stream (and stopped polling): wait for the server to see it.
    const ofrepStreams = () => srv!.app.ofrepEvents.count();
    await until(() => ofrepStreams() === 1, 'the provider to open its event stream');

    const t0 = Date.now();
    await kill(srv, 'new-checkout');
    await until(() => changes.length > 0, 'PROVIDER_CONFIGURATION_CHANGED after the kill', 5_000);
    expect(Date.now() - t0).toBeLessThan(5_000);
    // Every flag's metadata carries the environment version, so the provider reports every flag as changed.
    expect(changes[0]!.flagsChanged).toContain('new-checkout');
    expect(of.getBooleanDetails('new-checkout', true)).toMatchObject({ value: false, reason: 'DISABLED' });

    await revive(srv, 'new-checkout');
    await until(() => changes.length > 1, 'a second change after the revive');
    expect(of.getBooleanValue('new-checkout', false)).toBe(true);
    await OpenFeature.close();
    await until(() => ofrepStreams() === 0, 'the stream to close with the provider');
  });

  it('sends one refetchEvaluation with the configuration ETag per change, heartbeats as comments, and CORS for browsers', async () => {
    srv = await startServer({ ofrepEvents: { heartbeatMs: 50 } });
    await checkoutAndBanner(srv);
    const url = await streamUrl(srv);
    expect(url).toMatch(/\/ofrep\/v1\/events\?ticket=/);
    expect(url).not.toContain(srv.sdkKeys.production);
    const s = await openStream(url, { origin: 'https://app.example' });
    expect(s.res.status).toBe(200);
    expect(s.res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(s.res.headers.get('access-control-allow-origin')).toBe('*');
    await until(() => s.state.text.includes(': heartbeat'), 'a heartbeat comment');
    expect(s.events()).toEqual([]);
    const killed = await kill(srv, 'new-checkout');
    await until(() => s.events().length === 1, 'an event after the kill');
    const version = srv.app.snapshots.version('production')!;
    expect(s.events()[0]).toEqual({ type: 'refetchEvaluation', etag: `"production-${version}"` });
    expect(killed).toBeTruthy();
    await revive(srv, 'new-checkout');
    await until(() => s.events().length === 2, 'an event after the revive');
    // Another environment's change is not this key's business.
    await api(srv).post('/api/v1/flags/new-checkout/environments/staging/kill');
    await new Promise((r) => setTimeout(r, 200));
    expect(s.events()).toHaveLength(2);
    // The provider passes the event's ETag back as `flagConfigEtag`: accepted, and the bulk answer is fresh.
    const again = await fetch(`${srv.url}/ofrep/v1/evaluate/flags?flagConfigEtag=${encodeURIComponent(s.events()[1]!.etag!)}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${srv.sdkKeys.production}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(again.status).toBe(200);
  });

  it('the bulk ETag changes with every change and answers 304 while nothing changed', async () => {
    srv = await startServer();
    await checkoutAndBanner(srv);
    const first = await bulk(srv);
    const etag = first.headers.get('etag')!;
    expect(etag).toBeTruthy();
    expect((await bulk(srv, undefined, { 'if-none-match': etag })).status).toBe(304);
    await kill(srv, 'new-checkout');
    const after = await bulk(srv, undefined, { 'if-none-match': etag });
    expect(after.status).toBe(200);
    expect(after.headers.get('etag')).not.toBe(etag);
  });

  it('refuses a missing, forged or key-instead-of-ticket credential with a problem, and does not read the header', async () => {
    srv = await startServer();
    const base = `${srv.url}/ofrep/v1/events`;
    for (const url of [base, `${base}?ticket=`, `${base}?ticket=configured-sdk-production.AAAA`, `${base}?ticket=${srv.sdkKeys.production}`]) {
      const res = await fetch(url, { headers: { authorization: `Bearer ${srv.sdkKeys.production}` } });
      expect(res.status, url).toBe(401);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(((await res.json()) as { detail: string }).detail).toMatch(/ticket/);
    }
    // A ticket of one key is not another's.
    const good = new URL(await streamUrl(srv)).searchParams.get('ticket')!;
    const other = new URL(await streamUrl(srv, srv.sdkKeys.staging)).searchParams.get('ticket')!;
    expect(other).not.toBe(good);
    const swapped = `${other.split('.')[0]}.${good.split('.')[1]}`;
    expect((await fetch(`${base}?ticket=${swapped}`)).status).toBe(401);
  });

  it('logs the stream URL with the ticket masked', async () => {
    const lines: string[] = [];
    srv = await startServer({ logger: loggerOptions('trace', { write: (line: string) => void lines.push(line) }), ofrepEvents: { perAddress: 1 } });
    const url = await streamUrl(srv);
    const ticket = new URL(url).searchParams.get('ticket')!;
    expect((await openStream(url)).res.status).toBe(200);
    // A request that completes (the second stream, over the limit) is logged with its URL.
    expect((await openStream(url)).res.status).toBe(429);
    await until(() => lines.join('').includes('/ofrep/v1/events?ticket=[redacted]'), 'the request log line');
    expect(lines.join('')).not.toContain(ticket.split('.')[1]);
  });

  it('bounds open streams per key and address (429 with Retry-After), and frees the slot when one closes', async () => {
    srv = await startServer({ ofrepEvents: { perAddress: 2 } });
    const url = await streamUrl(srv);
    const a = await openStream(url);
    const b = await openStream(url);
    expect([a.res.status, b.res.status]).toEqual([200, 200]);
    const c = await openStream(url);
    expect(c.res.status).toBe(429);
    expect(c.res.headers.get('retry-after')).toBe('60');
    expect(c.res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await c.res.json()).toMatchObject({ status: 429, limit: 'ofrep-streams-per-address' });
    // Another key has its own allowance.
    expect((await openStream(await streamUrl(srv, srv.sdkKeys.staging))).res.status).toBe(200);
    a.close();
    await until(() => srv!.app.ofrepEvents.count() === 2, 'the closed stream to be forgotten');
    expect((await openStream(url)).res.status).toBe(200);
  });

  it('bounds open streams per key across addresses', async () => {
    srv = await startServer({ ofrepEvents: { perKey: 1 } });
    const url = await streamUrl(srv);
    expect((await openStream(url)).res.status).toBe(200);
    const over = await openStream(url);
    expect(over.res.status).toBe(429);
    expect(await over.res.json()).toMatchObject({ limit: 'ofrep-streams-per-key' });
  });

  it('ends the streams of a revoked key at once, and its ticket no longer opens one', async () => {
    srv = await startServer();
    const created = await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'web' });
    expect(created.status).toBe(201);
    const url = await streamUrl(srv, created.body.token);
    const s = await openStream(url);
    expect(s.res.status).toBe(200);
    expect((await api(srv).delete(`/api/v1/tokens/${created.body.id}`)).status).toBeLessThan(300);
    await until(() => s.state.ended, 'the stream of the revoked key to end');
    expect((await fetch(url)).status).toBe(401);
  });
});
