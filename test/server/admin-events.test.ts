/**
 * `GET /api/v1/events` on the real server: a change is announced within milliseconds with its keys; a revoked token's
 * stream ends; streams per token are bounded; no token, no stream; closing the server ends every stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;

beforeAll(async () => {
  srv = await startServer({ adminEvents: { heartbeatMs: 200, perToken: 3 } });
  expect((await api(srv).post('/api/v1/flags', { key: 'new-checkout', kind: 'boolean' })).status).toBe(201);
});

afterAll(async () => {
  await srv?.close();
});

interface Event {
  event: string;
  data: unknown;
}

/** Opens the stream and collects its events (and heartbeats) until `close()`. */
async function follow(token: string) {
  const controller = new AbortController();
  const res = await fetch(`${srv.url}/api/v1/events`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
  const events: Event[] = [];
  let heartbeats = 0;
  let ended = false;
  const done = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      const reader = res.body.getReader();
      for (;;) {
        const { value, done: finished } = await reader.read();
        if (finished) break;
        buffer += decoder.decode(value, { stream: true });
        let i: number;
        while ((i = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          if (frame.startsWith(':')) heartbeats++;
          const event = /^event: (.+)$/m.exec(frame)?.[1];
          const data = /^data: (.+)$/m.exec(frame)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) });
        }
      }
    } catch {
      /* aborted */
    }
    ended = true;
  })();
  return { res, events, heartbeats: () => heartbeats, ended: () => ended, close: () => controller.abort(), done };
}

describe('admin events', () => {
  it('says hello with the versions, then announces each change with its keys within milliseconds, and beats', async () => {
    const s = await follow(srv.adminToken);
    expect(s.res.status).toBe(200);
    expect(s.res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await expect.poll(() => s.events[0]?.event).toBe('hello');
    expect((s.events[0]!.data as { versions: Record<string, number> }).versions).toHaveProperty('production');
    const t0 = Date.now();
    expect((await api(srv).post('/api/v1/flags/new-checkout/environments/production/revive', { reason: 'launch' })).status).toBe(200);
    await expect.poll(() => s.events.map((e) => e.event), { interval: 5 }).toContain('change');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(s.events.find((e) => e.event === 'change')!.data).toMatchObject({ environment: 'production', flags: ['new-checkout'], segments: [] });
    await expect.poll(() => s.heartbeats()).toBeGreaterThan(1);
    s.close();
    await s.done;
  });

  it('ends the streams of a revoked token, bounds streams per token, and refuses without a token', async () => {
    const created = await api(srv).post('/api/v1/tokens', { kind: 'admin', name: 'dashboard' });
    expect(created.status).toBe(201);
    const token = created.body.token as string;
    const open = [await follow(token), await follow(token), await follow(token)];
    for (const s of open) expect(s.res.status).toBe(200);
    const fourth = await fetch(`${srv.url}/api/v1/events`, { headers: { authorization: `Bearer ${token}` } });
    expect(fourth.status).toBe(429);
    expect((await fourth.json()).limit).toBe('admin-event-streams-per-token');
    expect((await api(srv).delete(`/api/v1/tokens/${created.body.id}`)).status).toBe(200);
    await expect.poll(() => open.every((s) => s.ended())).toBe(true);
    expect((await fetch(`${srv.url}/api/v1/events`)).status).toBe(401);
  });

  it('closing the server ends every stream at once', async () => {
    const other = await startServer();
    const controller = new AbortController();
    const res = await fetch(`${other.url}/api/v1/events`, { headers: { authorization: `Bearer ${other.adminToken}` }, signal: controller.signal });
    expect(res.status).toBe(200);
    const t0 = Date.now();
    await other.close();
    expect(Date.now() - t0).toBeLessThan(2000);
    controller.abort();
  });
});
