/** The console's tokens page (issue 17): role, environments, expiry, last used; rotation shows the new secret once. */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

let srv: TestServer;
let browser: Browser;
const pageErrors: string[] = [];

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  await api(srv).post('/api/v1/flags', { key: 'checkout', kind: 'boolean' });
  browser = await launchBrowser();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await srv?.close();
});

describe('tokens in the console', () => {
  it('creates a scoped editor token that expires, and rotates an SDK key showing the new secret once', async () => {
    const p = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
    p.setDefaultTimeout(8000);
    p.on('pageerror', (e) => pageErrors.push(e.message));
    await p.goto(srv.url + '/');
    await p.getByLabel('Admin token').fill(srv.adminToken);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.locator('table.flags').waitFor();
    await p.getByRole('link', { name: 'Tokens' }).click();
    await p.getByRole('heading', { name: 'Tokens' }).waitFor();

    await p.getByLabel('Kind').selectOption('admin');
    await p.getByLabel('Role').selectOption('editor');
    await p.getByRole('checkbox', { name: 'staging' }).check();
    await p.getByLabel('Expires').fill('2099-01-02T03:04');
    await p.getByLabel('Name').fill('stager');
    await p.getByRole('button', { name: 'Create' }).click();
    const secret = (await p.getByTestId('new-secret').locator('code.token').textContent())!;
    const me = await api(srv).get('/api/v1/me', { token: secret });
    expect(me.body).toMatchObject({ role: 'editor', environments: ['staging'] });
    const stored = (await api(srv).get('/api/v1/tokens')).body.tokens.find((t: { name: string }) => t.name === 'stager');
    expect(new Date(stored.expiresAt).getFullYear()).toBe(2099);
    await p.getByRole('button', { name: 'Done, hide it' }).click();
    const row = p.locator(`tr[data-token="${stored.id}"]`);
    await expect.poll(() => row.textContent()).toContain('editor');
    expect(await row.textContent()).toContain('staging');
    expect(await row.textContent()).toContain('2099');

    const key = (await api(srv).post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'web-app' })).body;
    await p.reload();
    await p.getByRole('button', { name: 'Rotate web-app' }).click();
    const dialog = p.getByRole('dialog', { name: 'Rotate web-app' });
    await dialog.getByLabel('Overlap (seconds)').fill('120');
    await dialog.getByRole('button', { name: 'Rotate' }).click();
    const fresh = (await p.getByTestId('new-secret').locator('code.token').textContent())!;
    expect(fresh).toMatch(/^avi_sdk_/);
    const read = (k: string) => fetch(`${srv.url}/sdk/v1/flags`, { headers: { authorization: `Bearer ${k}` } }).then((r) => r.status);
    expect(await read(fresh)).toBe(200);
    expect(await read(key.token)).toBe(200);
    const old = (await api(srv).get(`/api/v1/tokens/${key.id}`)).body;
    expect(Date.parse(old.expiresAt) - Date.now()).toBeGreaterThan(100_000);
    await p.getByRole('button', { name: 'Done, hide it' }).click();
    await expect.poll(() => p.locator(`tr[data-token="${key.id}"]`).textContent()).toContain('rotated');
    expect(await p.getByRole('button', { name: 'Rotate web-app' }).count()).toBe(1);
    expect(await p.content()).not.toContain(fresh);
    expect(pageErrors).toEqual([]);
  });
});
