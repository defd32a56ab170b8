/**
 * Metrics exactly once through a relay tree (issue 13): server → relay A → relay B, real SDKs on relay B. The SDKs
 * keep evaluating and reporting while relay B is SIGKILLed and restarted, and while the server is SIGKILLed and
 * restarted; at the end the server has counted every evaluation exactly once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, PROCESS_ADMIN_TOKEN, PROCESS_SDK_KEY, startServerProcess, type ServerProcess } from '../stream/server-process.js';
import { startRelayProcess, type RelayProcess } from './relay-process.js';

let dir: string;
let server: ServerProcess;
let serverPort: number;
let relayA: RelayProcess;
let relayB: RelayProcess;
const clients: AviaryClient[] = [];
let startB: () => Promise<RelayProcess>;

const admin = (url: string, method: string, path: string, body?: unknown) =>
  fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${PROCESS_ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  }).then(async (r) => ({ status: r.status, body: (await r.json().catch(() => undefined)) as any }));

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (
    !(await Promise.resolve()
      .then(check)
      .catch(() => false))
  ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const ready = (url: string) => waitFor(`${url}/readyz`, async () => (await fetch(`${url}/readyz`)).ok);

async function counted(): Promise<number> {
  const from = Date.now() - 3_600_000;
  const m = await admin(server.url, 'GET', `/api/v1/flags/checkout/environments/production/metrics?from=${from}`);
  return (m.body?.totals?.on?.evaluations as number | undefined) ?? 0;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'aviary-relay-metrics-'));
  serverPort = await freePort();
  server = await startServerProcess(serverPort, join(dir, 'aviary.db'));
  expect((await admin(server.url, 'POST', '/api/v1/flags', { key: 'checkout', kind: 'boolean' })).status).toBe(201);
  expect(
    (
      await admin(server.url, 'PUT', '/api/v1/flags/checkout/environments/production', {
        enabled: true,
        offVariant: 'off',
        targets: [],
        rules: [],
        fallthrough: { variant: 'on' },
      })
    ).status,
  ).toBe(200);
  const a = await admin(server.url, 'POST', '/api/v1/tokens', { kind: 'relay', name: 'region-a', environments: ['production'] });
  const b = await admin(server.url, 'POST', '/api/v1/tokens', { kind: 'relay', name: 'edge-b', environments: ['production'] });
  expect([a.status, b.status]).toEqual([201, 201]);
  relayA = await startRelayProcess({
    host: '127.0.0.2',
    port: await freePort(),
    upstream: server.url,
    token: a.body.token,
    cacheDir: join(dir, 'relay-a'),
  });
  await ready(relayA.url);
  const bPort = await freePort();
  startB = () => startRelayProcess({ host: '127.0.0.3', port: bPort, upstream: relayA.url, token: b.body.token, cacheDir: join(dir, 'relay-b') });
  relayB = await startB();
  await ready(relayB.url);
}, 60_000);

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await relayB?.crash().catch(() => undefined);
  await relayA?.crash().catch(() => undefined);
  await server?.crash().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

describe('metrics through server → relay → relay', () => {
  it('arrive upstream exactly once through a relay SIGKILL and an upstream restart', async () => {
    for (let i = 0; i < 3; i++) {
      const c = createClient({ baseUrl: relayB.url, sdkKey: PROCESS_SDK_KEY, flushIntervalMs: 150 });
      await c.ready(20_000);
      clients.push(c);
    }
    let evaluations = 0;
    let running = true;
    // The SDKs keep evaluating (and their reporters keep flushing every 150 ms) through everything below.
    const load = (async () => {
      while (running) {
        for (const c of clients) {
          for (let i = 0; i < 10; i++) {
            expect(c.variation('checkout', { key: `u${i}` }, false)).toBe(true);
            evaluations++;
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await waitFor('the first reports to arrive upstream', async () => (await counted()) > 0);

    // Relay B dies without warning while reports flow through it, and comes back on the same address and cache.
    await new Promise((r) => setTimeout(r, 700));
    await relayB.crash();
    await new Promise((r) => setTimeout(r, 700));
    relayB = await startB();
    await ready(relayB.url);
    await new Promise((r) => setTimeout(r, 1_000));

    // The server dies while batches are on their way up, and comes back on the same port and database.
    await server.crash();
    await new Promise((r) => setTimeout(r, 1_500));
    server = await startServerProcess(serverPort, join(dir, 'aviary.db'));
    await new Promise((r) => setTimeout(r, 1_000));

    running = false;
    await load;
    // Every SDK's reporter empties its queue (its failed reports are retried with the same seq).
    await waitFor('every SDK to have reported everything', async () => (await Promise.all(clients.map((c) => c.flush()))).every(Boolean), 30_000);
    await waitFor(`the server to count ${evaluations} evaluations`, async () => (await counted()) >= evaluations, 45_000);
    expect(await counted()).toBe(evaluations);
    // Nothing arrives twice later (relays' retries of batches already counted).
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await counted()).toBe(evaluations);
    const pending = async (url: string) =>
      Number(/^aviary_relay_metrics_pending_reports (\S+)$/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1]);
    expect(await pending(relayA.url)).toBe(0);
    expect(await pending(relayB.url)).toBe(0);
  }, 120_000);
});
