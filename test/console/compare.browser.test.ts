/**
 * "Compare environments" on the flag page in headless Chromium against a real server and the real console build: the
 * flag's state in every environment side by side, the cells that differ from the selected environment marked (in text
 * too), and "Copy … to …": the diff first (nothing written), then the audited copy, which the API and a connected SDK
 * of the target environment then show. Also the receipts by app (issue 18, item 4): the kill receipt and the connected
 * SDK list name SDKs by app name and version, grouped by app, the SDK instance ids in the title.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, signedInPage } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';
import { shot } from './screenshots.js';

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
  const nl = { id: 'nl', conditions: [{ attribute: 'country', op: 'in', values: ['NL'] }], serve: { variant: 'on' } };
  expect((await a.put(PROD, { enabled: true, offVariant: 'off', rules: [nl], fallthrough: { variant: 'off' } })).status).toBe(200);
  const de = { ...nl, conditions: [{ attribute: 'country', op: 'in', values: ['DE'] }] };
  const staging = { enabled: true, offVariant: 'off', targets: [{ variant: 'on', keys: ['alice'] }], rules: [de], fallthrough: { variant: 'off' } };
  expect((await a.put(STAGING, staging)).status).toBe(200);
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.staging, flushIntervalMs: 0, app: { name: 'storefront', version: '4.2.0' } });
  await sdk.ready();
  browser = await launchBrowser();
  ({ page, errors: pageErrors } = await signedInPage(browser, srv, { width: 1280, height: 900 }));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await sdk?.close();
  await srv?.close();
});

const TABLE = 'banner across environments';
/** The cell of `member`'s row in `env`'s column. */
async function cell(p: Page, member: string, env: string) {
  const table = p.getByRole('table', { name: TABLE });
  const headers = (await table.locator('thead th').allTextContents()).map((h) => h.trim().split(/\s/)[0]);
  const col = headers.indexOf(env);
  expect(col).toBeGreaterThan(0);
  return table
    .getByRole('row', { name: new RegExp(`^${member}`) })
    .locator('th, td')
    .nth(col);
}

describe('compare environments in the console', () => {
  it('marks the cells that differ from the selected environment, then copies it: diff first, then API and SDK agree', async () => {
    expect(sdk.variation('banner', { key: 'u', country: 'NL' }, false)).toBe(false);
    expect(sdk.variation('banner', { key: 'alice' }, false)).toBe(true);
    await page.goto(`${srv.url}/flags/banner`);
    await page.getByRole('button', { name: 'Compare environments' }).click();
    await page.getByRole('table', { name: TABLE }).waitFor();
    await page.getByRole('table', { name: TABLE }).scrollIntoViewIfNeeded();
    await shot(page, 'compare');

    // production (the selected environment) against staging and development.
    const stagingRule = await cell(page, 'Rule nl', 'staging');
    expect(await stagingRule.textContent()).toContain('"DE"');
    expect(await stagingRule.textContent()).toContain('(differs from production)');
    expect(await stagingRule.getAttribute('class')).toContain('differs');
    expect(await (await cell(page, 'Rule nl', 'production')).textContent()).toContain('"NL"');
    expect(await (await cell(page, 'Rule nl', 'production')).textContent()).not.toContain('differs');
    expect(await (await cell(page, 'Targets → on', 'staging')).textContent()).toContain('alice');
    expect(await (await cell(page, 'Targets → on', 'staging')).textContent()).toContain('differs from production');
    // Equal cells are not marked: the off variant and the fallthrough are the same in staging.
    expect(await (await cell(page, 'Off variant', 'staging')).textContent()).toBe('off');
    expect(await (await cell(page, 'Fallthrough', 'staging')).textContent()).toBe('off');
    // development was never configured: its kill switch is off, unlike production's.
    expect(await (await cell(page, 'Kill switch', 'development')).textContent()).toContain('differs from production');
    expect(await page.getByText('Differs in: development, staging.').count()).toBe(1);

    const before = (await api(srv).get(STAGING)).body;
    await page.getByRole('button', { name: 'Copy production to staging…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Promote banner from production to staging' });
    const diff = dialog.getByRole('table', { name: 'Changes to banner in staging' });
    await diff.waitFor();
    const rows = (await diff.locator('tbody tr').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    expect(rows.some((r) => r.startsWith('/rules/0'))).toBe(true);
    expect(rows.some((r) => r.startsWith('/targets'))).toBe(true);
    // The diff is a dry run: nothing was written yet.
    expect((await api(srv).get(STAGING)).body.version).toBe(before.version);

    await dialog.getByLabel('Reason (optional)').fill('align staging with production');
    await dialog.getByRole('button', { name: 'Promote to staging' }).click();
    await expect.poll(() => dialog.textContent()).toContain('now has the state it has in production');
    const after = (await api(srv).get(STAGING)).body;
    const prod = (await api(srv).get(PROD)).body;
    expect(after.rules).toEqual(prod.rules);
    expect(after.targets).toEqual([]);
    await expect.poll(() => sdk.variation('banner', { key: 'u', country: 'NL' }, false)).toBe(true);
    expect(sdk.variation('banner', { key: 'alice' }, false)).toBe(false);
    const audit = await api(srv).get('/api/v1/audit?flag=banner&action=flag-state.promote');
    expect(audit.body.entries[0]).toMatchObject({ reason: 'align staging with production', environment: 'staging' });
    await dialog.getByRole('button', { name: 'Close' }).click();

    // The comparison follows: staging no longer differs from production.
    await expect.poll(async () => (await cell(page, 'Rule nl', 'staging')).textContent()).not.toContain('differs');
    expect(await page.getByText('Differs in: development.').count()).toBe(1);
    expect(await page.getByRole('row', { name: /^Targets → on/ }).count()).toBe(0);
    expect(pageErrors).toEqual([]);
  });

  it('hides "Copy … to …" from a role that cannot promote', async () => {
    const created = await api(srv).post('/api/v1/tokens', { kind: 'admin', name: 'viewer', role: 'viewer' });
    expect(created.status).toBe(201);
    const viewer = await signedInPage(browser, { url: srv.url, adminToken: created.body.token });
    await viewer.page.goto(`${srv.url}/flags/banner`);
    await viewer.page.getByRole('button', { name: 'Compare environments' }).click();
    await viewer.page.getByRole('table', { name: TABLE }).waitFor();
    expect(await viewer.page.getByRole('button', { name: /^Copy / }).count()).toBe(0);
    await viewer.page.close();
    expect(viewer.errors).toEqual([]);
  });
});

describe('receipts by app', () => {
  it('the kill receipt and the SDK list group SDKs by app name and version, instance ids in the title', async () => {
    const prod = (app: { name: string; version: string }) =>
      createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0, app });
    const storefront = [1, 2, 3].map(() => prod({ name: 'storefront', version: '4.2.0' }));
    const checkout = prod({ name: 'checkout', version: '1.10.0' });
    const all = [...storefront, checkout];
    try {
      await Promise.all(all.map((c) => c.ready()));
      await page.goto(`${srv.url}/`);
      const list = page.getByTestId('connected-sdks');
      await expect.poll(() => list.locator('summary').textContent()).toMatch(/^4 of 4 connected SDKs on the latest version/);
      await list.locator('summary').click();
      const apps = list.getByTestId('sdk-app');
      expect((await apps.allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim())).toEqual([
        expect.stringMatching(/^checkout 1\.10\.0: 1 of 1 on version \d+$/),
        expect.stringMatching(/^storefront 4\.2\.0: 3 of 3 on version \d+$/),
      ]);
      const storefrontTitle = (await apps.nth(1).locator('th').getAttribute('title'))!;
      for (const c of storefront) expect(storefrontTitle).toContain(c.sdkId);
      expect(storefrontTitle).not.toContain(checkout.sdkId);
      expect(await list.locator(`td[title="SDK instance ${checkout.sdkId}"]`).textContent()).toBe('checkout 1.10.0');
      // Instance ids are in titles only, not in the text.
      expect(await list.textContent()).not.toContain(checkout.sdkId);

      await page.getByRole('button', { name: 'Kill banner in production' }).click();
      const dialog = page.getByRole('dialog', { name: 'Kill banner in production' });
      await dialog.getByLabel('Reason').fill('INC-18: receipts by app');
      await dialog.getByRole('button', { name: 'Kill flag' }).click();
      await expect.poll(() => dialog.getByTestId('delivery-text').textContent(), { timeout: 10_000 }).toMatch(/^4\/4 SDKs applied version \d+/);
      const receipt = dialog.getByTestId('delivery-apps').locator('li');
      await expect
        .poll(async () => (await receipt.allInnerTexts()).map((t) => t.trim()))
        .toEqual(['checkout 1.10.0: 1 of 1 applied', 'storefront 4.2.0: 3 of 3 applied']);
      const title = (await receipt.nth(1).getAttribute('title'))!;
      for (const c of storefront) expect(title).toContain(c.sdkId);
      // No relays here: no per-relay list.
      expect(await dialog.getByTestId('delivery-relays').count()).toBe(0);
      for (const c of all) expect(c.variation('banner', { key: 'u', country: 'NL' }, true)).toBe(false);
      await dialog.getByRole('button', { name: 'Close' }).click();
      expect(pageErrors).toEqual([]);
    } finally {
      await Promise.all(all.map((c) => c.close()));
    }
  });
});
