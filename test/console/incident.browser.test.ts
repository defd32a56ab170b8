/**
 * The console's incident view in headless Chromium against the real server: the flag list says what each flag serves
 * and who last changed it and why; the panic dialog lists what it will kill and spares the flags the user ticks; while
 * the panic holds, a banner says since when, by whom, why and what it killed, and restores from there.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, signedInPage } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';
import { shot } from './screenshots.js';

let srv: TestServer;
let browser: Browser;
let page: Page;
let errors: string[] = [];
const STATE = (flag: string) => `/api/v1/flags/${flag}/environments/production`;

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  const a = api(srv);
  for (const key of ['checkout', 'search', 'banner', 'payments']) expect((await a.post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
  const put = (flag: string, body: object) => a.put(STATE(flag), { enabled: true, offVariant: 'off', ...body });
  expect(
    (
      await put('checkout', {
        fallthrough: {
          rollout: {
            weights: [
              { variant: 'on', percent: 5 },
              { variant: 'off', percent: 95 },
            ],
          },
        },
        reason: 'ramp to 5%',
      })
    ).status,
  ).toBe(200);
  expect((await put('search', { fallthrough: { variant: 'on' } })).status).toBe(200);
  expect(
    (
      await put('banner', {
        rules: [{ id: 'staff', conditions: [{ attribute: 'email', op: 'endsWith', values: ['@acme.com'] }], serve: { variant: 'on' } }],
        fallthrough: { variant: 'off' },
      })
    ).status,
  ).toBe(200);
  expect((await put('payments', { fallthrough: { variant: 'on' } })).status).toBe(200);
  browser = await launchBrowser();
  ({ page, errors } = await signedInPage(browser, srv));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
});

const row = (flag: string) => page.locator(`table.flags tbody tr[data-flag="${flag}"]`);

describe('incident view', () => {
  it('the flag list says what each flag serves and who last changed it and why', async () => {
    await row('checkout').waitFor();
    expect(await row('checkout').getByTestId('serving').textContent()).toBe('on 5% · off 95%');
    expect(await row('search').getByTestId('serving').textContent()).toBe('on to everyone');
    expect(await row('banner').getByTestId('serving').textContent()).toBe('1 rule, then off');
    await shot(page, 'flags-serving');
    expect(await row('checkout').getByTestId('last-change').textContent()).toMatch(/^update .+ by AVIARY_ADMIN_TOKEN: ramp to 5%$/);
    expect(errors).toEqual([]);
  });

  it('the panic dialog lists what it will kill and spares what the user ticks; the banner holds until restore', async () => {
    await page.getByRole('button', { name: 'Panic: kill all in production' }).click();
    const dialog = page.getByRole('dialog', { name: 'Kill every flag in production' });
    const spare = dialog.getByRole('group', { name: /Will kill \d+ of 4 flags that are on/ });
    await spare.waitFor();
    expect((await spare.locator('code').allTextContents()).sort()).toEqual(['banner', 'checkout', 'payments', 'search']);
    await spare.getByLabel('spare payments').check();
    expect(await spare.locator('legend').textContent()).toMatch(/^Will kill 3 of 4 flags/);
    await dialog.getByLabel('Type the environment name to confirm').fill('production');
    await dialog.getByLabel('Reason').fill('INC-12: bad deploy');
    await dialog.getByRole('button', { name: 'Kill everything' }).click();
    await expect.poll(() => dialog.textContent()).toContain('Killed 3 flag(s)');
    expect(await dialog.textContent()).toContain('spared: payments');
    await dialog.getByRole('button', { name: 'Close' }).click();
    expect((await api(srv).get(STATE('payments'))).body.enabled).toBe(true);
    expect((await api(srv).get(STATE('checkout'))).body.enabled).toBe(false);

    const banner = page.getByTestId('panic-banner');
    await banner.waitFor();
    expect((await banner.textContent())?.replace(/\s+/g, ' ')).toMatch(
      /^production is in panic since .+, by AVIARY_ADMIN_TOKEN \(INC-12: bad deploy\): 3 flags killed \(.*checkout.*\)\./,
    );
    // It stays after a reload: the audit log says the panic holds.
    await page.reload();
    await banner.waitFor();
    await row('checkout').waitFor();
    await shot(page, 'panic-banner');
    await banner.getByRole('button', { name: 'Restore every flag it killed' }).click();
    const restore = page.getByRole('dialog', { name: 'Restore production' });
    await restore.getByRole('button', { name: 'Restore' }).click();
    await expect.poll(() => restore.textContent()).toContain('Restored 3 flag(s)');
    await restore.getByRole('button', { name: 'Close' }).click();
    await expect.poll(() => banner.count()).toBe(0);
    for (const f of ['checkout', 'search', 'banner', 'payments']) expect((await api(srv).get(STATE(f))).body.enabled).toBe(true);
    expect(errors).toEqual([]);
  });
});
