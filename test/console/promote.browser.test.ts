/**
 * "Promote to…" on the flag page in headless Chromium against a real server and the real console build: the diff is
 * shown before anything is written, Cancel changes nothing, Promote copies the state (audited with the reason) and a
 * connected SDK of the target environment serves it.
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
const PROD = '/api/v1/flags/banner/environments/production';
const STAGING = '/api/v1/flags/banner/environments/staging';

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  const a = api(srv);
  expect((await a.post('/api/v1/flags', { key: 'banner', kind: 'boolean' })).status).toBe(201);
  const rules = [{ id: 'nl', conditions: [{ attribute: 'country', op: 'in', values: ['NL'] }], serve: { variant: 'on' } }];
  expect((await a.put(PROD, { enabled: true, offVariant: 'off', rules, fallthrough: { variant: 'off' } })).status).toBe(200);
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.staging, flushIntervalMs: 0 });
  await sdk.ready();
  browser = await launchBrowser();
  ({ page, errors: pageErrors } = await signedInPage(browser, srv, { width: 1280, height: 900 }));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await sdk?.close();
  await srv?.close();
});

const rowTexts = async (p: Page, table: string) =>
  (await p.getByRole('table', { name: table }).locator('tbody tr').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());

describe('promote in the console', () => {
  it('shows the diff first; Cancel changes nothing; Promote copies the state, audited, and the SDK serves it', async () => {
    expect(sdk.variation('banner', { key: 'u', country: 'NL' }, false)).toBe(false);
    const before = (await api(srv).get(STAGING)).body;
    await page.goto(`${srv.url}/flags/banner`);
    await page.getByLabel('Promote to…').selectOption('staging');
    await page.getByRole('button', { name: 'Promote', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Promote banner from production to staging' });
    await dialog.getByRole('table', { name: 'Changes to banner in staging' }).waitFor();
    const rows = await rowTexts(page, 'Changes to banner in staging');
    expect(rows).toContain('/enabled false true');
    expect(rows.some((r) => r.startsWith('/rules/0'))).toBe(true);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect((await api(srv).get(STAGING)).body.version).toBe(before.version);

    await page.getByRole('button', { name: 'Promote', exact: true }).click();
    await dialog.getByRole('table', { name: 'Changes to banner in staging' }).waitFor();
    await dialog.getByLabel('Reason (optional)').fill('ready for staging');
    await dialog.getByRole('button', { name: 'Promote to staging' }).click();
    await expect.poll(() => dialog.textContent()).toContain('now has the state it has in production');
    await expect.poll(() => sdk.variation('banner', { key: 'u', country: 'NL' }, false)).toBe(true);
    const audit = await api(srv).get('/api/v1/audit?flag=banner&action=flag-state.promote');
    expect(audit.body.entries).toHaveLength(1);
    expect(audit.body.entries[0]).toMatchObject({ reason: 'ready for staging', environment: 'staging' });
    await dialog.getByRole('button', { name: 'Close' }).click();
    expect(pageErrors).toEqual([]);
  });
});
