/**
 * Defects found by trying the console as a new user and as an on-call engineer (issue 18), each reproduced in
 * headless Chromium against the real server and the real console build:
 * 1. your own save becomes the editor's new base (no "changed elsewhere", no 412 on the next save);
 * 2. `npm run build` while the server runs: the new page finds its new assets;
 * 3. the audit log's filter survives the refresh while typing and matches part of a key;
 * 4. a POSIX browser locale (`en-US@posix`) still draws the canary charts; Promote after a rollback, in words;
 *    kill-all entries in the audit log; an invalid state has no nonsense preview, and each server error once.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { DEFAULT_CONSOLE_ROOT } from '../../server/console/console-plugin.js';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, signedInPage } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

let srv: TestServer;
let browser: Browser;
let page: Page;
let errors: string[] = [];

const ON = { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } };
const STATE = (flag: string) => `/api/v1/flags/${flag}/environments/production`;

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  const a = api(srv);
  for (const key of ['new-checkout', 'checkout-v2', 'pricing', 'ranking']) {
    expect((await a.post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
    expect((await a.put(STATE(key), ON)).status).toBe(200);
  }
  browser = await launchBrowser();
  ({ page, errors } = await signedInPage(browser, srv));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
});

describe('console defects', () => {
  it('1. after a save, the saved state is the base: no "changed elsewhere", the preview compares with it, and the next save works', async () => {
    await page.goto(srv.url + '/flags/pricing');
    await page.getByRole('heading', { name: 'Targeting in production' }).waitFor();
    const fallthrough = page.getByRole('group', { name: 'Everyone else (fallthrough)' });
    await fallthrough.getByRole('combobox', { name: 'Variant' }).selectOption('off');
    await page.getByRole('button', { name: 'Save targeting' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    expect((await api(srv).get(STATE('pricing'))).body.fallthrough).toEqual({ variant: 'off' });
    // Let the page's refresh come and go: our own write is not "a change made elsewhere".
    await page.waitForTimeout(2500);
    expect(await page.getByText('changed elsewhere').count()).toBe(0);
    // A second edit: "Now" is the saved state (everyone off), not the state before the save.
    await fallthrough.getByRole('combobox', { name: 'Variant' }).selectOption('on');
    await page.getByTestId('preview').waitFor();
    const now = await page.getByTestId('preview').locator('tbody tr').allInnerTexts();
    expect(now.map((r) => r.replace(/\s+/g, ' ').trim())).toEqual(expect.arrayContaining([expect.stringMatching(/^off \d+ 0$/)]));
    await page.getByRole('button', { name: 'Save targeting' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    expect(await page.getByRole('alert').count()).toBe(0);
    expect((await api(srv).get(STATE('pricing'))).body.fallthrough).toEqual({ variant: 'on' });
    expect(errors).toEqual([]);
  });

  it('2. a console rebuilt while the server runs is served whole: the new page finds its new assets', async () => {
    // Its own server on a copy of the build that the test "rebuilds" (renamed assets break the other tests' pages).
    const consoleRoot = mkdtempSync(join(tmpdir(), 'aviary-console-'));
    cpSync(DEFAULT_CONSOLE_ROOT, consoleRoot, { recursive: true });
    const rebuilt = await startServer({ console: { root: consoleRoot } });
    try {
      expect((await api(rebuilt).post('/api/v1/flags', { key: 'after-rebuild', kind: 'boolean' })).status).toBe(201);
      const assets = join(consoleRoot, 'assets');
      const before = readdirSync(assets);
      // What `npm run build` does: new hashed names, the old files gone, index.html naming the new ones.
      // Every file under a new name, and every reference to it (index.html, and chunks importing chunks) updated.
      const renamed = new Map(before.map((name) => [name, name.replace(/(\.[a-z0-9]+)$/i, '-rebuilt$1')]));
      const rewrite = (text: string) => [...renamed].reduce((t, [from, to]) => t.replaceAll(from, to), text);
      for (const [from, to] of renamed) {
        const content = readFileSync(join(assets, from));
        rmSync(join(assets, from));
        writeFileSync(join(assets, to), /\.(js|css|map)$/.test(from) ? rewrite(content.toString('utf8')) : content);
      }
      writeFileSync(join(consoleRoot, 'index.html'), rewrite(readFileSync(join(consoleRoot, 'index.html'), 'utf8')));
      const fresh = await browser.newPage();
      fresh.setDefaultTimeout(8000);
      const pageErrors: string[] = [];
      fresh.on('pageerror', (e) => pageErrors.push(e.message));
      await fresh.goto(rebuilt.url + '/');
      await fresh.getByLabel('Admin token').fill(rebuilt.adminToken);
      await fresh.getByRole('button', { name: 'Sign in' }).click();
      await fresh.getByRole('link', { name: 'after-rebuild' }).waitFor();
      expect(pageErrors).toEqual([]);
      // A previous build's asset is a problem+json 404, not the page.
      const gone = await fetch(`${rebuilt.url}/assets/${before.find((n) => n.endsWith('.js'))}`);
      expect(gone.status).toBe(404);
      expect(gone.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      await fresh.close();
    } finally {
      await rebuilt.close();
      rmSync(consoleRoot, { recursive: true, force: true });
    }
  });

  it('3. the audit filter keeps what is typed through refreshes and matches part of a key', async () => {
    await page.goto(srv.url + '/audit');
    const filter = page.getByLabel('Flag or key contains');
    await filter.waitFor();
    // Type slowly across the page's 2 s refresh.
    await filter.pressSequentially('check', { delay: 50 });
    await page.waitForTimeout(2300);
    await filter.pressSequentially('out', { delay: 50 });
    expect(await filter.inputValue()).toBe('checkout');
    await expect
      .poll(async () => new Set((await page.locator('table.audit tbody tr td:nth-child(4) a').allInnerTexts()).map((t) => t.trim())))
      .toEqual(new Set(['new-checkout', 'checkout-v2']));
    expect(errors).toEqual([]);
  });

  it('4a. kill-all in the audit log says what it killed and spared, in its environment once', async () => {
    const a = api(srv);
    expect((await a.post('/api/v1/environments/production/kill-all', { reason: 'INC-9', except: ['ranking'] })).status).toBe(200);
    await page.goto(srv.url + '/audit');
    const row = page.locator('table.audit tbody tr[data-action="environment.kill-all"]').first();
    await row.waitFor();
    const cells = (await row.locator('td').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    expect(cells[3]).toBe('environment production');
    expect(cells[5]).toMatch(/^killed 3 flags: checkout-v2, new-checkout, pricing; spared ranking\b/);
    const text = cells.join(' | ');
    expect(text).not.toMatch(/\bcreated\b/);
    expect((await a.post('/api/v1/environments/production/revive-all', { reason: 'INC-9 over' })).status).toBe(200);
  });

  it('4b. an invalid state shows what is wrong instead of a preview, and a refused save lists each error once', async () => {
    await page.goto(srv.url + '/flags/checkout-v2');
    await page.getByRole('heading', { name: 'Targeting in production' }).waitFor();
    const fallthrough = page.getByRole('group', { name: 'Everyone else (fallthrough)' });
    await fallthrough.getByLabel('percentage rollout').check();
    await fallthrough.getByLabel('Everyone else (fallthrough): percent for on').fill('65');
    await fallthrough.getByLabel('Everyone else (fallthrough): percent for off').fill('50');
    const invalid = page.getByTestId('preview-invalid');
    await invalid.waitFor();
    expect(await invalid.textContent()).toMatch(/\/fallthrough\/rollout.*100/);
    expect(await page.getByTestId('preview').count()).toBe(0);
    expect(await page.getByText(/of \d+ sample contexts .* would change variant/).count()).toBe(0);
    await page.getByRole('button', { name: 'Save targeting' }).click();
    const alert = page.locator('form.editor p.error[role="alert"]');
    await alert.waitFor();
    const message = (await alert.textContent()) ?? '';
    const first = /\/fallthrough\/rollout[^;:]*: /.exec(message)?.[0];
    expect(first, message).toBeDefined();
    expect(message.split(first!)).toHaveLength(2);
    expect((await api(srv).get(STATE('checkout-v2'))).body.fallthrough).toEqual({ variant: 'on' });
  });
});

describe('console under a POSIX browser locale (navigator.language en-US@posix)', () => {
  let posix: Browser;
  let sdk: AviaryClient;

  afterAll(async () => {
    await posix?.close();
    await sdk?.close();
  });

  it('4c. draws the canary charts; after a rollback the page offers Promote and says "rolled back"', async () => {
    const a = api(srv);
    const canary = `${STATE('ranking')}/canary`;
    const started = await a.put(canary, {
      control: 'off',
      canary: 'on',
      stages: [{ percent: 50 }, { percent: 100 }],
      stageDurationSeconds: 3600,
      guard: { minSamples: 100000 },
    });
    expect(started.status, JSON.stringify(started.body)).toBeLessThan(300);
    sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
    await sdk.ready();
    await expect
      .poll(() => Array.from({ length: 100 }, (_, i) => sdk.variation('ranking', { key: `u-${i}` }, false)).filter(Boolean).length)
      .toBeGreaterThan(10);
    for (let i = 0; i < 200; i++) {
      const ctx = { key: `u-${i}` };
      sdk.track('ranking', ctx, { error: i % 20 === 0, latencyMs: 50 + (i % 30) });
      sdk.variation('ranking', ctx, false);
    }
    await sdk.flush();
    await expect.poll(async () => (await a.get(`${STATE('ranking')}/metrics`)).body.totals?.on?.outcomes ?? 0).toBeGreaterThan(0);

    posix = await launchBrowser({ lang: 'C' });
    const { page: p, errors: posixErrors } = await signedInPage(posix, srv);
    expect(await p.evaluate(() => navigator.language)).toMatch(/@posix$|^en-US$/);
    await p.goto(srv.url + '/flags/ranking/canary');
    await p.getByTestId('charts').waitFor();
    await expect
      .poll(async () => ({
        canvases: await p.locator('[data-testid="charts"] .uplot canvas').count(),
        failed: await p.getByText('could not be drawn').allTextContents(),
        posixErrors,
      }))
      .toEqual({ canvases: 2, failed: [], posixErrors: [] });

    expect((await a.post(`${canary}/rollback`, { reason: 'errors up' })).status).toBe(200);
    await p.reload();
    await expect.poll(() => p.getByTestId('canary-state').textContent()).toBe('rolled back');
    expect(await p.getByText('rolled_back').count()).toBe(0);
    await p.getByRole('button', { name: 'Promote' }).click();
    const dialog = p.getByRole('dialog', { name: 'Promote the canary' });
    await dialog.getByLabel('Reason (audit log)').fill('the errors were the CDN');
    await dialog.getByRole('button', { name: 'Promote' }).click();
    await expect.poll(() => p.getByTestId('canary-state').textContent()).toBe('promoted');
    expect((await a.get(canary)).body.state).toBe('promoted');
    expect(posixErrors).toEqual([]);
  });
});
