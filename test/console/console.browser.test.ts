/**
 * The web console in headless Chromium (playwright-core, test/console/browser.ts) against a real server serving the real
 * console build, with a real SDK client connected to production: what an on-call engineer does in an incident, and
 * what a release manager looks at during a canary. With AVIARY_SCREENSHOTS=1 it also refreshes docs/screenshots/.
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeExposure, type CanaryStatus } from '@aviary/api-client';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

const SHOTS = process.env.AVIARY_SCREENSHOTS === '1';
const SHOT_DIR = fileURLToPath(new URL('../../docs/screenshots/', import.meta.url));

let srv: TestServer;
let browser: Browser;
let page: Page;
let sdk: AviaryClient;
const pageErrors: string[] = [];

const ON = { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } };

async function shot(p: Page, name: string, fullPage = false): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOT_DIR, { recursive: true });
  await p.screenshot({ path: `${SHOT_DIR}${name}.png`, fullPage });
}

async function signIn(p: Page): Promise<void> {
  await signInTo(p, srv);
}

async function signInTo(p: Page, server: TestServer): Promise<void> {
  await p.goto(server.url + '/');
  await p.getByLabel('Admin token').fill(server.adminToken);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.locator('table.flags').waitFor();
}

/** Every table a person can see has an accessible name (a caption, or a heading that labels it). */
async function expectTablesNamed(p: Page): Promise<void> {
  const visible = await p.locator('table:visible').count();
  expect(visible).toBeGreaterThan(0);
  expect(await p.getByRole('table', { name: /\S/ }).count()).toBe(visible);
}

async function stateOf(flag: string, env = 'production') {
  return (await api(srv).get(`/api/v1/flags/${flag}/environments/${env}`)).body as { enabled: boolean };
}

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  const a = api(srv);
  const flags = [
    { key: 'new-checkout', kind: 'boolean', description: 'The new checkout flow', tags: ['payments'] },
    { key: 'search.v2', kind: 'boolean', description: 'Vector search', tags: ['search'] },
    { key: 'ranking-v3', kind: 'boolean', description: 'New ranking model', tags: ['search'] },
    { key: 'dark-mode', kind: 'boolean', description: 'Dark theme' },
  ];
  for (const f of flags) {
    expect((await a.post('/api/v1/flags', f)).status).toBe(201);
    expect((await a.put(`/api/v1/flags/${f.key}/environments/production`, ON)).status).toBe(200);
    expect((await a.put(`/api/v1/flags/${f.key}/environments/staging`, ON)).status).toBe(200);
  }
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, app: { name: 'storefront', version: '4.2.0' }, flushIntervalMs: 0 });
  await sdk.ready();
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  // Fail with the locator that did not show up, well before the test's own timeout.
  page.setDefaultTimeout(8000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // Console errors other than the expected 4xx answers (a refused token, a flag without a canary): CSP refusals
  // and rendering warnings would show up here.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(m.text());
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await sdk?.close();
  await srv?.close();
});

describe('incident console', () => {
  it('signs in with an admin token kept in sessionStorage, never in the URL', async () => {
    await page.goto(srv.url + '/');
    await page.getByLabel('Admin token').fill('wrong-token-0123456789');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('not accepted');
    await shot(page, 'sign-in');

    await signIn(page);
    expect(page.url()).not.toContain(srv.adminToken);
    expect(await page.evaluate(() => sessionStorage.getItem('aviary.token'))).toBe(srv.adminToken);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect(await page.locator('table.flags tbody tr').count()).toBe(4);
    await expectTablesNamed(page);
    // The key and the kind read as two words (screen readers, copy and paste).
    expect(await page.locator('tr[data-flag="new-checkout"] th').textContent()).toMatch(/^new-checkout boolean/);
  });

  it('finds a flag by search and kills it with a reason; the API shows it off and the connected SDK serves off', async () => {
    expect(sdk.variation('new-checkout', { key: 'user-1' }, false)).toBe(true);
    await page.getByLabel('Search flags').fill('checkout');
    await expect.poll(() => page.locator('table.flags tbody tr').count()).toBe(1);
    await shot(page, 'flags');

    await page.getByRole('button', { name: 'Kill new-checkout in production' }).click();
    const dialog = page.getByRole('dialog', { name: 'Kill new-checkout in production' });
    await dialog.getByRole('button', { name: 'Kill flag' }).click();
    await expect.poll(() => dialog.getByRole('alert').textContent()).toContain('Say why');
    expect((await stateOf('new-checkout')).enabled).toBe(true);

    await dialog.getByLabel('Reason').fill('INC-7: checkout 500s after deploy');
    await dialog.getByRole('button', { name: 'Kill flag' }).click();
    const delivery = dialog.getByTestId('delivery-text');
    await expect.poll(() => delivery.textContent(), { timeout: 10_000 }).toMatch(/^1\/1 SDKs applied version \d+/);
    await shot(page, 'kill-delivery');

    expect((await stateOf('new-checkout')).enabled).toBe(false);
    expect(sdk.variation('new-checkout', { key: 'user-1' }, true)).toBe(false);
    expect(sdk.variationDetail('new-checkout', { key: 'user-1' }, true).reason.kind).toBe('OFF');

    await dialog.getByRole('button', { name: 'Close' }).click();
    await expect.poll(() => page.locator('tr[data-flag="new-checkout"] td.current .badge').textContent()).toBe('killed');
  });

  it('the audit view shows the kill with who, why and the change', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    const row = page.locator('tr[data-action="flag.kill"]').first();
    await row.waitFor();
    const text = await row.textContent();
    expect(text).toContain('new-checkout');
    expect(text).toContain('INC-7: checkout 500s after deploy');
    expect(text).toContain('in production');
    // The expandable change says which entry it belongs to, for a screen reader reading it out of the row.
    expect(await row.locator('summary').textContent()).toMatch(/of flag\.kill new-checkout in production, /);
    await row.locator('summary').click();
    expect(await row.locator('.diff').textContent()).toContain('"enabled": false');
    await expectTablesNamed(page);
    await shot(page, 'audit');
  });

  it('reflects a change made elsewhere without reloading', async () => {
    await page.getByRole('link', { name: 'Flags', exact: true }).click();
    await page.locator('tr[data-flag="dark-mode"]').waitFor();
    expect(await page.locator('tr[data-flag="dark-mode"] td.current .badge').textContent()).toBe('on');
    const navigations: string[] = [];
    page.on('framenavigated', (f) => navigations.push(f.url()));
    expect((await api(srv).post('/api/v1/flags/dark-mode/environments/production/kill', { reason: 'from the CLI' })).status).toBe(200);
    await expect.poll(() => page.locator('tr[data-flag="dark-mode"] td.current .badge').textContent(), { timeout: 6000 }).toBe('killed');
    expect(navigations).toEqual([]);
    expect((await api(srv).post('/api/v1/flags/dark-mode/environments/production/revive', {})).status).toBe(200);
    await expect.poll(() => page.locator('tr[data-flag="dark-mode"] td.current .badge').textContent(), { timeout: 6000 }).toBe('on');
  });

  it('panic kills every flag of the environment after a typed confirmation, and restore puts each back exactly', async () => {
    await page.getByRole('button', { name: 'Panic: kill all in production' }).click();
    const dialog = page.getByRole('dialog', { name: 'Kill every flag in production' });
    const go = dialog.getByRole('button', { name: 'Kill everything' });
    expect(await go.isDisabled()).toBe(true);
    await dialog.getByLabel('Type the environment name to confirm').fill('staging');
    expect(await go.isDisabled()).toBe(true);
    await dialog.getByLabel('Type the environment name to confirm').fill('production');
    await dialog.getByLabel('Reason').fill('INC-8: everything is on fire');
    await shot(page, 'panic-confirm');
    await go.click();
    await expect.poll(() => dialog.getByTestId('delivery-text').textContent(), { timeout: 10_000 }).toMatch(/^1\/1 SDKs applied/);
    expect(await dialog.textContent()).toContain('Killed 3 flag(s)');
    for (const f of ['search.v2', 'ranking-v3', 'dark-mode']) {
      expect((await stateOf(f)).enabled).toBe(false);
      expect(sdk.variation(f, { key: 'u' }, true)).toBe(false);
    }
    // Other environments are untouched.
    expect((await stateOf('search.v2', 'staging')).enabled).toBe(true);
    await dialog.getByRole('button', { name: 'Close' }).click();

    await page.getByRole('button', { name: 'Restore production' }).click();
    const restore = page.getByRole('dialog', { name: 'Restore production' });
    await restore.getByRole('button', { name: 'Restore' }).click();
    await expect.poll(() => restore.getByTestId('delivery-text').textContent(), { timeout: 10_000 }).toMatch(/^1\/1 SDKs applied/);
    await restore.getByRole('button', { name: 'Close' }).click();
    for (const f of ['search.v2', 'ranking-v3', 'dark-mode']) expect((await stateOf(f)).enabled).toBe(true);
    // The flag killed before the panic stays killed: restore means "as before the panic".
    expect((await stateOf('new-checkout')).enabled).toBe(false);
    expect(sdk.variation('search.v2', { key: 'u' }, false)).toBe(true);
    await expect.poll(() => page.getByRole('button', { name: 'Restore production' }).count()).toBe(0);
  });

  it("a running canary's page charts error rate and latency per variant from real SDK outcomes, and its controls work", async () => {
    const a = api(srv);
    const put = await a.put('/api/v1/flags/ranking-v3/environments/production/canary', {
      control: 'off',
      canary: 'on',
      stages: [{ percent: 30 }, { percent: 60 }, { percent: 100 }],
      stageDurationSeconds: 3600,
      guard: { minSamples: 100000 },
    });
    expect(put.status, JSON.stringify(put.body)).toBeLessThan(300);
    // Wait until the SDK has the canary's rollout (streamed), then produce outcomes on both sides.
    await expect
      .poll(() => Array.from({ length: 200 }, (_, i) => sdk.variation('ranking-v3', { key: `user-${i}` }, false)).filter(Boolean).length, {
        timeout: 5000,
      })
      .toBeGreaterThan(20);
    const served = { on: 0, off: 0 };
    for (let i = 0; i < 600; i++) {
      const ctx = { key: `user-${i}` };
      const v = sdk.variation('ranking-v3', ctx, false);
      served[v ? 'on' : 'off']++;
      sdk.track('ranking-v3', ctx, { error: v ? i % 10 === 0 : i % 50 === 0, latencyMs: (v ? 120 : 80) + (i % 40) });
    }
    await sdk.flush();
    const metricsPath = '/api/v1/flags/ranking-v3/environments/production/metrics';
    await expect.poll(async () => (await a.get(metricsPath)).body.totals?.on?.outcomes ?? 0, { timeout: 10_000 }).toBe(served.on);
    const metrics = (await a.get(metricsPath)).body as { totals: Record<string, { evaluations: number; outcomes: number }> };
    expect(metrics.totals.off!.outcomes).toBe(served.off);

    await page.goto(srv.url + '/flags/ranking-v3/canary');
    await page.getByTestId('charts').waitFor();
    expect(await page.getByTestId('canary-state').textContent()).toBe('running');
    // What really serves the canary variant: what the server reports, in the words the CLI uses too.
    const status = (await a.get('/api/v1/flags/ranking-v3/environments/production/canary')).body as CanaryStatus;
    expect(await page.getByTestId('exposure').textContent()).toBe(`Exposure: ${describeExposure(status)}`);
    // Two uPlot charts, each with a line per variant, drawn on canvases.
    await expect.poll(() => page.locator('[data-testid="charts"] .uplot canvas').count()).toBe(2);
    const legend = await page.locator('[data-testid="charts"] .u-legend').first().textContent();
    expect(legend).toContain('off');
    expect(legend).toContain('on');
    // The plotted numbers are the SDK's: error rates in the chart data table match what was tracked.
    const onRate = await page.locator('figure[aria-label="Error rate"] td[data-series="on"]').first().textContent();
    expect(onRate).toMatch(/^\d+\.\d\d%$/);
    expect(await page.locator('[data-testid="totals"] tr[data-variant="on"] td').nth(1).textContent()).toBe(String(served.on));
    expect(await page.locator('[data-testid="totals"] tr[data-variant="off"] td').nth(1).textContent()).toBe(String(served.off));
    expect(await page.locator('ol.timeline li').count()).toBe(3);
    expect(await page.locator('ol.timeline li[aria-current="step"]').textContent()).toContain('30%');
    await page.getByTestId('decision').waitFor();

    await page.getByRole('button', { name: 'Pause' }).click();
    const dialog = page.getByRole('dialog', { name: 'Pause the canary' });
    await dialog.getByLabel('Reason (audit log)').fill('holding for the weekend');
    await dialog.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => page.getByTestId('canary-state').textContent()).toBe('paused');
    expect((await a.get('/api/v1/flags/ranking-v3/environments/production/canary')).body.state).toBe('paused');
  });

  it('charts a canary over time: a point per minute and variant, from SDK reports across its stages', async () => {
    // A second server whose clock the test drives, so fourteen minutes of a canary take a second.
    let t = Math.floor((Date.now() - 16 * 60_000) / 60_000) * 60_000 + 5_000;
    const clocked = await startServer({ now: () => t });
    const client = createClient({ baseUrl: clocked.url, sdkKey: clocked.sdkKeys.production, now: () => t, flushIntervalMs: 0 });
    const viewer = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      const a = api(clocked);
      expect((await a.post('/api/v1/flags', { key: 'checkout-v2', kind: 'boolean', description: 'Checkout rewrite' })).status).toBe(201);
      expect((await a.put('/api/v1/flags/checkout-v2/environments/production', ON)).status).toBe(200);
      const canary = '/api/v1/flags/checkout-v2/environments/production/canary';
      const started = await a.put(canary, {
        control: 'off',
        canary: 'on',
        stages: [{ percent: 10 }, { percent: 25 }, { percent: 50 }, { percent: 100 }],
        stageDurationSeconds: 3600,
        guard: { minSamples: 1_000_000 },
      });
      expect(started.status, JSON.stringify(started.body)).toBeLessThan(300);
      await client.ready();
      const onShare = () =>
        Array.from({ length: 400 }, (_, i) => client.variation('checkout-v2', { key: `user-${i}` }, false)).filter(Boolean).length;
      await expect.poll(onShare, { timeout: 5000 }).toBeGreaterThan(10);
      const minutes = 14;
      for (let m = 0; m < minutes; m++) {
        if (m === 5 || m === 10) {
          const before = onShare();
          expect((await a.post(`${canary}/advance`, { reason: 'manual step' })).status).toBe(200);
          await expect.poll(onShare, { timeout: 5000 }).toBeGreaterThan(before);
        }
        for (let i = 0; i < 400; i++) {
          const ctx = { key: `user-${i}` };
          const on = client.variation('checkout-v2', ctx, false);
          // Deterministic outcomes: the canary errs about twice as often and is ~25% slower.
          const r = (i * 7919 + m * 104729) % 1000;
          client.track('checkout-v2', ctx, { error: r < (on ? 30 : 15), latencyMs: (on ? 125 : 100) + (r % 60) });
        }
        await client.flush();
        t += 60_000;
      }
      await signInTo(viewer, clocked);
      await viewer.goto(clocked.url + '/flags/checkout-v2/canary');
      const rows = viewer.locator('figure[aria-label="Error rate"] details tbody tr');
      await expect.poll(() => rows.count()).toBe(minutes);
      await expect.poll(() => viewer.locator('[data-testid="charts"] .uplot canvas').count()).toBe(2);
      expect(await viewer.locator('ol.timeline li[aria-current="step"]').textContent()).toContain('50%');
      expect(await viewer.locator('ol.timeline li.done').count()).toBe(2);
      // Every minute has both sides; the canary's error rate is the higher one overall.
      const rates = async (v: string) =>
        (await viewer.locator(`figure[aria-label="Error rate"] td[data-series="${v}"]`).allTextContents()).map((x) => parseFloat(x));
      const [on, off] = [await rates('on'), await rates('off')];
      expect(on.every(Number.isFinite) && off.every(Number.isFinite)).toBe(true);
      expect(on.reduce((x, y) => x + y) / minutes).toBeGreaterThan(off.reduce((x, y) => x + y) / minutes);
      await shot(viewer, 'canary', true);
    } finally {
      await viewer.close();
      await client.close();
      await clocked.close();
    }
  });

  it('the flag page previews how a targeting change re-assigns contexts and warns about moving them out of a canary', async () => {
    await page.goto(srv.url + '/flags/ranking-v3');
    await page.getByRole('heading', { name: 'Targeting in production' }).waitFor();
    expect(await page.getByRole('note').textContent()).toContain('A canary is paused');
    // Send everyone else to `off`: contexts that had the canary leave it.
    const fallthrough = page.getByRole('group', { name: 'Everyone else (fallthrough)' });
    await fallthrough.getByLabel('one variant').check();
    await fallthrough.getByRole('combobox', { name: 'Variant' }).selectOption('off');
    const preview = page.getByTestId('preview');
    await preview.waitFor();
    expect(await page.getByTestId('canary-warning').textContent()).toMatch(/moves \d+ of \d+ sample contexts out of the running canary/);
    await shot(page, 'flag', true);
    await page.getByRole('button', { name: 'Discard changes' }).click();
    await expect.poll(() => page.getByTestId('preview').count()).toBe(0);
  });

  it('is keyboard operable: reach the search and a kill switch with Tab, open and dismiss the dialog without a mouse', async () => {
    await page.goto(srv.url + '/');
    await page.locator('table.flags').waitFor();
    let reached = false;
    for (let i = 0; i < 25 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement?.id === 'flag-search');
    }
    expect(reached).toBe(true);
    await page.keyboard.type('search.v2');
    await expect.poll(() => page.locator('table.flags tbody tr').count()).toBe(1);
    let onKill = false;
    for (let i = 0; i < 10 && !onKill; i++) {
      await page.keyboard.press('Tab');
      onKill = await page.evaluate(() => document.activeElement?.getAttribute('aria-label') === 'Kill search.v2 in production');
    }
    expect(onKill).toBe(true);
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Kill search.v2 in production' });
    await dialog.waitFor();
    expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('TEXTAREA');
    await page.keyboard.press('Escape');
    await expect.poll(() => dialog.isVisible()).toBe(false);
    expect((await stateOf('search.v2')).enabled).toBe(true);
  });

  it('lists the connected SDKs and whether they run the latest version', async () => {
    await page.goto(srv.url + '/');
    const summary = page.getByTestId('connected-sdks').locator('summary');
    await expect.poll(() => summary.textContent()).toMatch(/^1 of 1 connected SDK on the latest version \(\d+\) of production$/);
    await summary.click();
    expect(await page.getByTestId('connected-sdks').textContent()).toContain('storefront 4.2.0');
  });

  it('creates an SDK key whose secret is shown once, and revokes it', async () => {
    await page.getByRole('link', { name: 'Tokens' }).click();
    await page.getByLabel('Kind').selectOption('sdk');
    await page.getByRole('combobox', { name: 'Environment' }).nth(1).selectOption('staging');
    await page.getByLabel('Name').fill('checkout-service');
    await page.getByRole('button', { name: 'Create' }).click();
    const secret = (await page.getByTestId('new-secret').locator('code.token').textContent())!;
    expect(secret.length).toBeGreaterThan(16);
    const read = (key: string) => fetch(`${srv.url}/sdk/v1/flags`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.status);
    expect(await read(secret)).toBe(200);
    await shot(page, 'tokens');
    await page.getByRole('button', { name: 'Done, hide it' }).click();
    await page.reload();
    await page.getByRole('button', { name: 'Revoke checkout-service' }).waitFor();
    expect(await page.content()).not.toContain(secret);

    await page.getByRole('button', { name: 'Revoke checkout-service' }).click();
    await page.getByRole('dialog', { name: 'Revoke checkout-service' }).getByRole('button', { name: 'Revoke' }).click();
    await expect.poll(() => page.getByRole('button', { name: 'Revoke checkout-service' }).count()).toBe(0);
    expect(await read(secret)).toBe(401);
    await expectTablesNamed(page);
  });

  it('creates a segment from the segments page', async () => {
    await page.getByRole('link', { name: 'Segments' }).click();
    await page.getByRole('button', { name: 'New segment' }).click();
    await page.getByLabel('Key', { exact: true }).fill('beta-testers');
    await page.getByLabel('Description').fill('Opted into betas');
    await page.getByLabel('Included keys (always in)').fill('user-1\nuser-2');
    await page.getByRole('button', { name: 'Save segment' }).click();
    await page.getByRole('button', { name: 'Edit segment beta-testers' }).waitFor();
    const stored = (await api(srv).get('/api/v1/segments/beta-testers')).body as { included: string[]; description: string };
    expect(stored.included).toEqual(['user-1', 'user-2']);
    expect(stored.description).toBe('Opted into betas');
    await expectTablesNamed(page);
  });

  it('is usable at phone width: nothing overflows the viewport', async () => {
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
    try {
      await signIn(phone);
      const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(overflow).toBeLessThanOrEqual(0);
      await shot(phone, 'flags-phone');
    } finally {
      await phone.close();
    }
    expect(pageErrors).toEqual([]);
  });
});
