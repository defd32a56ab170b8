/**
 * Relays in the console (issue 13), headless Chromium against a real server with a relay tree (server → region-a →
 * edge-b, in-process relays) and real SDKs at each level: the SDK list groups SDKs by their relay path, and the kill
 * receipt counts each relay path's SDKs as they apply the kill.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { buildRelayApp } from '../../server/relay/relay-app.js';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

let srv: TestServer;
let browser: Browser;
let page: Page;
let dir: string;
const relays: FastifyInstance[] = [];
const sdks: AviaryClient[] = [];
const pageErrors: string[] = [];

async function startRelay(upstream: string, name: string): Promise<string> {
  const token = (await api(srv).post('/api/v1/tokens', { kind: 'relay', name, environments: ['production'] })).body.token as string;
  const relay = await buildRelayApp({
    upstream,
    token,
    cacheDir: join(dir, name),
    backoff: { initialMs: 100, maxMs: 500 },
    metrics: { periodMs: 200 },
  });
  await relay.listen({ port: 0, host: '127.0.0.1' });
  relays.push(relay);
  const a = relay.server.address();
  return `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
}

beforeAll(async () => {
  await ensureConsoleBuilt();
  dir = mkdtempSync(join(tmpdir(), 'aviary-console-relays-'));
  srv = await startServer();
  expect((await api(srv).post('/api/v1/flags', { key: 'new-checkout', kind: 'boolean' })).status).toBe(201);
  expect((await api(srv).post('/api/v1/flags/new-checkout/environments/production/revive')).status).toBe(200);
  const regionA = await startRelay(srv.url, 'region-a');
  const edgeB = await startRelay(regionA, 'edge-b');
  for (const [baseUrl, name] of [
    [srv.url, 'direct-app'],
    [regionA, 'regional-app'],
    [edgeB, 'edge-app'],
  ] as const) {
    const c = createClient({
      baseUrl,
      sdkKey: srv.sdkKeys.production,
      flushIntervalMs: 0,
      app: { name, version: '1.0.0' },
      backoff: { initialMs: 100 },
    });
    await c.ready(20_000);
    sdks.push(c);
  }
  // Every SDK (through both relays) is known upstream before the console looks.
  const deadline = Date.now() + 15_000;
  while ((await api(srv).get('/api/v1/environments/production/sdks')).body.items.length < 3 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(srv.url + '/');
  await page.getByLabel('Admin token').fill(srv.adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('table.flags').waitFor();
}, 90_000);

afterAll(async () => {
  await browser?.close();
  for (const c of sdks) await c.close();
  for (const r of relays.reverse()) await r.close();
  await srv?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('relays in the console', () => {
  it('groups the SDK list by relay path', async () => {
    const list = page.getByTestId('connected-sdks');
    await expect.poll(() => list.locator('summary').textContent()).toMatch(/^3 of 3 connected SDKs on the latest version/);
    await list.locator('summary').click();
    const groups = list.getByTestId('sdk-group');
    await expect.poll(() => groups.count()).toBe(3);
    const text = (await groups.allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    expect(text[0]).toMatch(/^connected directly: 1 of 1 on version \d+ .*direct-app 1\.0\.0/);
    expect(text[1]).toMatch(/^via region-a: 1 of 1 on version \d+ .*regional-app 1\.0\.0/);
    expect(text[2]).toMatch(/^via region-a → edge-b: 1 of 1 on version \d+ .*edge-app 1\.0\.0/);
    expect(pageErrors).toEqual([]);
  });

  it('counts each relay path in the kill receipt', async () => {
    await page.getByRole('button', { name: 'Kill new-checkout in production' }).click();
    const dialog = page.getByRole('dialog', { name: 'Kill new-checkout in production' });
    await dialog.getByLabel('Reason').fill('INC-9: through the relays');
    await dialog.getByRole('button', { name: 'Kill flag' }).click();
    await expect.poll(() => dialog.getByTestId('delivery-text').textContent(), { timeout: 10_000 }).toMatch(/^3\/3 SDKs applied version \d+/);
    const perRelay = dialog.getByTestId('delivery-relays').locator('li');
    await expect
      .poll(async () => (await perRelay.allInnerTexts()).map((t) => t.trim()))
      .toEqual(['connected directly: 1 of 1 applied', 'via region-a: 1 of 1 applied', 'via region-a → edge-b: 1 of 1 applied']);
    for (const c of sdks) expect(c.variation('new-checkout', { key: 'u' }, true)).toBe(false);
    expect(pageErrors).toEqual([]);
  });
});
