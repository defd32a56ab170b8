/**
 * The flag page's scheduled changes in headless Chromium against a real server and a real SDK: schedule a kill a few
 * seconds ahead, watch it run (the list says done, the SDK serves off), schedule another and cancel it.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, signedInPage } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

let srv: TestServer;
let browser: Browser;
let page: Page;
let sdk: AviaryClient;
let pageErrors: string[] = [];

/** A `datetime-local` value (browser's zone: the page runs in the same process zone as this test) `ms` from now. */
function localValue(ms: number): string {
  const t = Date.now() + ms;
  const d = new Date(t - new Date(t).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 19);
}

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  const a = api(srv);
  expect((await a.post('/api/v1/flags', { key: 'holiday-sale', kind: 'boolean' })).status).toBe(201);
  expect((await a.post('/api/v1/flags/holiday-sale/environments/production/revive')).status).toBe(200);
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
  await sdk.ready();
  browser = await launchBrowser();
  ({ page, errors: pageErrors } = await signedInPage(browser, srv, { width: 1280, height: 900 }));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await sdk?.close();
  await srv?.close();
});

describe('scheduled changes in the console', () => {
  it('schedules a kill that runs on time (the list says done, the SDK serves off), and cancels another', async () => {
    await page.goto(srv.url + '/flags/holiday-sale');
    const panel = page.getByRole('region', { name: 'Scheduled changes in production' });
    await panel.waitFor();
    expect(await panel.textContent()).toContain('Nothing scheduled.');
    const form = panel.getByRole('form', { name: 'Schedule a change' });
    await form.getByLabel('Action').selectOption('kill');
    await form.getByLabel('At').fill(localValue(3000));
    await form.getByLabel('Reason').fill('sale ends');
    await form.getByRole('button', { name: 'Schedule' }).click();
    const rows = panel.getByRole('table', { name: 'Scheduled changes in production' }).locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(1);
    expect(await rows.first().textContent()).toMatch(/kill.*pending.*sale ends/);
    const listed = (await api(srv).get('/api/v1/flags/holiday-sale/environments/production/schedules')).body.schedules;
    expect(listed).toMatchObject([{ action: 'kill', status: 'pending', reason: 'sale ends' }]);

    // It runs: the list follows, and so does the SDK.
    await expect.poll(() => rows.first().textContent(), { timeout: 10_000 }).toMatch(/done/);
    expect(sdk.variation('holiday-sale', { key: 'u' }, true)).toBe(false);

    // A revive an hour ahead, cancelled from the list: it never runs.
    await form.getByLabel('Action').selectOption('revive');
    await form.getByLabel('At').fill(localValue(3_600_000));
    await form.getByLabel('Reason').fill('');
    await form.getByRole('button', { name: 'Schedule' }).click();
    await expect.poll(() => rows.count()).toBe(2);
    await panel.getByRole('button', { name: /^Cancel the revive/ }).click();
    await expect.poll(() => rows.nth(1).textContent()).toMatch(/cancelled/);
    const after = (await api(srv).get('/api/v1/flags/holiday-sale/environments/production/schedules')).body.schedules;
    expect(after.map((s: { action: string; status: string }) => [s.action, s.status])).toEqual([
      ['kill', 'done'],
      ['revive', 'cancelled'],
    ]);
    expect(await panel.getByRole('button', { name: /^Cancel the/ }).count()).toBe(0);

    // A time in the past is refused with the server's reason, and nothing is added.
    await form.getByLabel('At').fill(localValue(-3_600_000));
    await form.getByRole('button', { name: 'Schedule' }).click();
    expect(await panel.getByRole('alert').textContent()).toContain('/at');
    expect(await rows.count()).toBe(2);
    expect(pageErrors).toEqual([]);
  });
});
