/**
 * Prerequisites in the console, in headless Chromium against a real server serving the real console build: an
 * operator adds a prerequisite in the targeting editor and saves it (the API stores it), the required flag's page
 * names the flags that require it, and a save that would close a cycle shows the server's refusal and stores nothing.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, signedInPage } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

let srv: TestServer;
let browser: Browser;
let page: Page;
let pageErrors: string[] = [];

const ON = { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } };
const stateOf = async (flag: string) => (await api(srv).get(`/api/v1/flags/${flag}/environments/production`)).body;

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  for (const key of ['gate', 'feature']) {
    expect((await api(srv).post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
    expect((await api(srv).put(`/api/v1/flags/${key}/environments/production`, ON)).status).toBe(200);
  }
  browser = await launchBrowser();
  ({ page, errors: pageErrors } = await signedInPage(browser, srv, { width: 1280, height: 900 }));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
});

it('adds a prerequisite in the targeting editor, shows who requires a flag, and shows the refusal of a cycle', async () => {
  await page.goto(srv.url + '/flags/feature');
  await page.getByRole('heading', { name: 'Targeting in production' }).waitFor();
  const editor = page.getByTestId('prerequisites');
  await editor.getByRole('button', { name: 'Add prerequisite' }).click();
  await expect.poll(() => editor.getByRole('combobox', { name: 'Prerequisite 1 flag' }).inputValue()).toBe('gate');
  expect(await editor.getByRole('checkbox', { name: 'Prerequisite 1 accepts on' }).isChecked()).toBe(true);
  await page.getByRole('button', { name: 'Save targeting' }).click();
  await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
  expect((await stateOf('feature')).prerequisites).toEqual([{ flag: 'gate', variants: ['on'] }]);

  // The required flag's page names the flag requiring it.
  // The flag list says it too, before anyone reaches for gate's kill switch.
  await page.goto(srv.url + '/');
  await expect.poll(() => page.locator('tr[data-flag="gate"] .required-by').textContent()).toBe('required by feature');
  await expect.poll(() => page.locator('tr[data-flag="feature"] .requires').textContent()).toBe('requires gate');

  await page.goto(srv.url + '/flags/gate');
  await page.getByRole('heading', { name: 'Targeting in production' }).waitFor();
  await expect.poll(() => page.getByTestId('required-by').textContent()).toContain('feature');

  // Requiring `feature` from `gate` would close a cycle: the server refuses, the editor says why, nothing is stored.
  const gateEditor = page.getByTestId('prerequisites');
  await gateEditor.getByRole('button', { name: 'Add prerequisite' }).click();
  await page.getByRole('button', { name: 'Save targeting' }).click();
  await expect.poll(() => page.locator('form.editor [role="alert"]').textContent()).toContain('would create a cycle: gate → feature → gate');
  expect('prerequisites' in (await stateOf('gate'))).toBe(false);
  expect(pageErrors).toEqual([]);
});
