/**
 * The flag page's triggers in headless Chromium against a real server and a real SDK: create a kill trigger (its URL
 * shown once, copied with the button), call the URL as Alertmanager would (the SDK serves off, the list counts the
 * firing), then delete it after confirming (the URL answers 404).
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { api, request, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

let srv: TestServer;
let browser: Browser;
let page: Page;
let sdk: AviaryClient;
const pageErrors: string[] = [];

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  const a = api(srv);
  expect((await a.post('/api/v1/flags', { key: 'new-checkout', kind: 'boolean' })).status).toBe(201);
  expect((await a.post('/api/v1/flags/new-checkout/environments/production/revive')).status).toBe(200);
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
  await sdk.ready();
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: srv.url });
  page = await context.newPage();
  page.setDefaultTimeout(8000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(m.text());
  });
  await page.goto(srv.url + '/');
  await page.getByLabel('Admin token').fill(srv.adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('table.flags').waitFor();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await sdk?.close();
  await srv?.close();
});

describe('triggers in the console', () => {
  it('creates a trigger whose URL is shown once and copied, that kills the flag when called; deletes it', async () => {
    await page.goto(srv.url + '/flags/new-checkout');
    const panel = page.getByRole('region', { name: 'Triggers in production' });
    await panel.waitFor();
    expect(await panel.textContent()).toContain('No triggers.');

    // Bad input: a blank name is refused by the server, with the field named, and nothing is created.
    const form = panel.getByRole('form', { name: 'Create a trigger' });
    await form.getByLabel('Trigger name').fill('   ');
    await form.getByRole('button', { name: 'Create trigger' }).click();
    await expect.poll(() => form.getByRole('alert').textContent()).toContain('/name');
    expect((await api(srv).get('/api/v1/flags/new-checkout/environments/production/triggers')).body.triggers).toEqual([]);

    await form.getByLabel('Trigger action').selectOption('kill');
    await form.getByLabel('Trigger name').fill('alertmanager-checkout');
    await form.getByRole('button', { name: 'Create trigger' }).click();
    const shown = panel.getByTestId('new-trigger-url');
    await shown.waitFor();
    const url = (await shown.locator('code').textContent())!;
    expect(url).toMatch(new RegExp(`^${srv.url}/hooks/v1/triggers/[A-Za-z0-9_-]{43}$`));
    await shown.getByRole('button', { name: 'Copy URL' }).click();
    await shown.getByRole('button', { name: 'Copied' }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(url);

    const rows = panel.getByRole('table', { name: 'Triggers in production' }).locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(1);
    const cells = rows.first().locator('td');
    expect(await cells.allTextContents()).toEqual([
      'alertmanager-checkout',
      'kill',
      'never',
      '0',
      expect.stringContaining('by AVIARY_ADMIN_TOKEN'),
      'Delete',
    ]);

    // Once hidden, the URL is gone for good: the list never shows it.
    await shown.getByRole('button', { name: 'Done, hide it' }).click();
    expect(await panel.getByTestId('new-trigger-url').count()).toBe(0);
    expect(await panel.textContent()).not.toContain(url.split('/').pop()!);

    // Alertmanager calls it: the SDK serves off, and the list (following the live tick) counts the firing.
    const fired = await request(srv, 'POST', new URL(url).pathname, {
      token: null,
      body: { status: 'firing', receiver: 'aviary', alerts: [{ status: 'firing', labels: { alertname: 'CheckoutErrors' } }] },
    });
    expect(fired.status).toBe(200);
    await expect.poll(() => sdk.variation('new-checkout', { key: 'u' }, true)).toBe(false);
    // The console polls for changes every 2 s (console/src/lib/live.ts).
    await expect.poll(() => rows.first().locator('td').nth(3).textContent(), { timeout: 8000 }).toBe('1');
    expect(await rows.first().locator('td').nth(2).textContent()).not.toBe('never');

    // Delete, after confirming: the URL answers 404 from then on.
    page.once('dialog', (d) => void d.accept());
    await panel.getByRole('button', { name: 'Delete the trigger alertmanager-checkout' }).click();
    await expect.poll(() => rows.count()).toBe(0);
    expect((await request(srv, 'POST', new URL(url).pathname, { token: null })).status).toBe(404);
    expect((await api(srv).get('/api/v1/flags/new-checkout/environments/production/triggers')).body.triggers).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
