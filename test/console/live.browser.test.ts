/**
 * The console follows changes by push (GET /api/v1/events) in headless Chromium: a kill made with the CLI shows on the
 * open flag list within a second, with no polling in between; and when the server stops, a banner says so at once
 * and the page's numbers are marked stale.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POLL_MS } from '../../console/src/lib/live.js';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { buildCli, removeCli, runCli } from '../cli/run-cli.js';
import { launchBrowser, signedInPage } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

let srv: TestServer;
let browser: Browser;
let page: Page;
let errors: string[] = [];

beforeAll(async () => {
  await Promise.all([ensureConsoleBuilt(), buildCli()]);
  srv = await startServer();
  const a = api(srv);
  for (const key of ['new-checkout', 'dark-mode']) {
    expect((await a.post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
    expect(
      (await a.put(`/api/v1/flags/${key}/environments/production`, { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } })).status,
    ).toBe(200);
  }
  browser = await launchBrowser();
  ({ page, errors } = await signedInPage(browser, srv));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
  removeCli();
});

describe('live console', () => {
  it('follows the change stream, and a kill made with the CLI shows within a second', async () => {
    await expect.poll(() => page.locator('header .live').textContent()).toBe('live');
    const row = page.locator('table.flags tbody tr', { hasText: 'new-checkout' });
    await row.waitFor();
    expect(await row.textContent()).not.toContain('killed');
    // Quiet for longer than the old 2 s poll: with push, nothing polls the audit log meanwhile.
    const polls: number[] = [];
    const onRequest = (r: { url(): string }) => {
      if (r.url().includes('/api/v1/audit?limit=1')) polls.push(Date.now());
    };
    page.on('request', onRequest);
    await page.waitForTimeout(POLL_MS + 500);
    page.off('request', onRequest);
    expect(polls).toEqual([]);
    const res = await runCli(['flags', 'kill', 'new-checkout', '--env', 'production', '--reason', 'INC-77'], {
      AVIARY_URL: srv.url,
      AVIARY_TOKEN: srv.adminToken,
    });
    expect(res.code, res.stderr).toBe(0);
    const done = Date.now();
    await expect.poll(async () => (await row.textContent()) ?? '', { interval: 20, timeout: 3000 }).toContain('killed');
    expect(Date.now() - done).toBeLessThan(1000);
    expect(errors).toEqual([]);
  });

  it('says at once when the server is unreachable, and marks the page stale', async () => {
    await page.locator('table.flags').waitFor();
    expect(await page.locator('#stale-banner').count()).toBe(0);
    await srv.close({ keepData: true });
    const banner = page.getByRole('alert').filter({ hasText: 'The server cannot be reached' });
    await banner.waitFor({ timeout: 5000 });
    expect(await banner.textContent()).toMatch(/may be stale: kill switches and other changes cannot be sent/);
    expect(await page.locator('main').getAttribute('data-stale')).toBe('true');
    expect(await page.locator('header .live').textContent()).toBe('offline');
  });
});
