/**
 * The flag page's History tab in headless Chromium against a real server serving the real console build, with a real
 * SDK connected: every version with who and why, a diff of two selected versions, and a confirmed revert that the SDK
 * applies.
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
const STATE = '/api/v1/flags/pricing/environments/production';

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  const a = api(srv);
  expect((await a.post('/api/v1/flags', { key: 'pricing', kind: 'boolean', description: 'New pricing page' })).status).toBe(201);
  expect((await a.put(STATE, { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' }, reason: 'launch' })).status).toBe(200);
  expect((await a.post(`${STATE}/kill`, { reason: 'INC-5: checkout errors' })).status).toBe(200);
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
  await sdk.ready();
  browser = await launchBrowser();
  ({ page, errors: pageErrors } = await signedInPage(browser, srv, { width: 1280, height: 800 }));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await sdk?.close();
  await srv?.close();
});

const rowTexts = async (p: Page, table: string) =>
  (await p.getByRole('table', { name: table }).locator('tbody tr').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());

describe('flag history in the console', () => {
  it('lists every version with who and why, and diffs the two selected versions', async () => {
    await page.goto(srv.url + '/flags/pricing');
    await page.getByRole('tab', { name: 'History' }).click();
    const rows = await (async () => {
      await page.getByRole('table', { name: 'History of pricing in production' }).waitFor();
      return rowTexts(page, 'History of pricing in production');
    })();
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(/^v3 .* flag\.kill off \(off\), 0 rules, fallthrough on INC-5: checkout errors/);
    expect(rows[1]).toMatch(/^v2 .* flag-state\.update on, 0 rules, fallthrough on launch/);
    expect(rows[2]).toMatch(/^v1 .* flag\.create off/);
    // By default, what the last write changed.
    await page.getByRole('heading', { name: 'Changes from v2 to v3' }).waitFor();
    expect(await rowTexts(page, 'Changes from v2 to v3')).toEqual(['/enabled true false']);

    await page.getByRole('radio', { name: 'Compare from v1' }).check();
    await page.getByRole('radio', { name: 'Compare to v2' }).check();
    await page.getByRole('heading', { name: 'Changes from v1 to v2' }).waitFor();
    expect(await rowTexts(page, 'Changes from v1 to v2')).toContain('/enabled false true');
    // The current version has no Revert button; the others have one each.
    expect(await page.getByRole('button', { name: /^Revert pricing in production to v/ }).count()).toBe(2);
  });

  it('reverts to a version after confirmation; the connected SDK switches and the audit log records it', async () => {
    expect(sdk.variation('pricing', { key: 'u' }, true)).toBe(false);
    // Cancelling changes nothing.
    await page.getByRole('button', { name: 'Revert pricing in production to v1' }).click();
    await page.getByRole('dialog', { name: 'Revert pricing in production to v1' }).getByRole('button', { name: 'Cancel' }).click();
    expect((await api(srv).get(STATE)).body.version).toBe(3);

    await page.getByRole('button', { name: 'Revert pricing in production to v2' }).click();
    const dialog = page.getByRole('dialog', { name: 'Revert pricing in production to v2' });
    await dialog.getByLabel('Reason (optional)').fill('INC-5 fixed in 2.3.1');
    await dialog.getByRole('button', { name: 'Revert to v2' }).click();
    await expect.poll(() => dialog.textContent()).toContain('now holds the state of v2, as v4');
    await expect.poll(() => sdk.variation('pricing', { key: 'u' }, false)).toBe(true);
    await dialog.getByRole('button', { name: 'Close' }).click();

    await expect
      .poll(async () => (await rowTexts(page, 'History of pricing in production'))[0])
      .toMatch(/^v4 .* flag-state\.revert on.* INC-5 fixed in 2\.3\.1/);
    const audit = await api(srv).get('/api/v1/audit?flag=pricing&action=flag-state.revert');
    expect(audit.body.entries).toHaveLength(1);
    expect(audit.body.entries[0]).toMatchObject({ reason: 'INC-5 fixed in 2.3.1', after: { enabled: true, version: 4 } });
    expect(pageErrors).toEqual([]);
  });
});
