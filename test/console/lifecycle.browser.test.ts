/**
 * Flag lifecycle in the console, in headless Chromium against a real server (on an injected clock) serving the real
 * console build: the status per flag, the status filter (the API's ?status=) and the "Ready to remove" view with the
 * evidence, from SDK metrics reports.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, request, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, signedInPage } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

const DAY = 86_400_000;
const T0 = Date.parse('2026-03-02T10:00:00.000Z');
let t = T0;
let srv: TestServer;
let browser: Browser;
let page: Page;
let seq = 0;

const report = async (flag: string, variant: string) => {
  const minute = Math.floor(t / 60_000) * 60_000;
  const r = await request(srv, 'POST', '/sdk/v1/metrics', {
    token: srv.sdkKeys.production,
    body: { sdkId: 'console-test', seq: ++seq, stats: [{ flag, variant, minute, evaluations: 20, reasons: {}, outcomes: 0, errors: 0 }] },
  });
  expect(r.status).toBe(200);
};

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer({ now: () => t });
  for (const key of ['done', 'stale', 'busy']) expect((await api(srv).post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
  for (const key of ['done', 'stale', 'busy']) await report(key, 'on');
  t = T0 + 8 * DAY;
  await report('done', 'on');
  await report('busy', 'on');
  await report('busy', 'off');
  browser = await launchBrowser();
  ({ page } = await signedInPage(browser, srv, { width: 1280, height: 900 }));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
});

it('shows each flag’s status, filters by it, and lists the flags ready to remove with the evidence', async () => {
  await page.goto(srv.url + '/');
  const badge = (flag: string) => page.locator(`tr[data-flag="${flag}"] .badge.lifecycle`).textContent();
  await expect.poll(() => badge('done')).toBe('launched');
  expect(await badge('stale')).toBe('inactive');
  expect(await badge('busy')).toBe('active');

  await page.getByLabel('Status in production').selectOption('launched');
  await expect.poll(() => page.locator('table.flags tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-flag')))).toEqual(['done']);
  await page.getByLabel('Status in production').selectOption('');
  await expect.poll(() => page.locator('table.flags tbody tr').count()).toBe(3);

  await page.getByRole('button', { name: 'Ready to remove' }).click();
  const ready = page.getByTestId('ready-to-remove');
  await expect.poll(() => ready.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-flag')))).toEqual(['done', 'stale']);
  expect(await ready.locator('tr[data-flag="done"] .evidence').textContent()).toMatch(/^served only `on` to every context since /);
  expect(await ready.locator('tr[data-flag="stale"] .evidence').textContent()).toMatch(/^not evaluated since /);
  expect(await ready.locator('tr[data-flag="stale"] .last-evaluated').textContent()).not.toBe('never');
});
