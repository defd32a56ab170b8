/**
 * Webhooks in the console (headless Chromium against a real server and the real console build, a real receiver):
 * create one (the secret shown once), send a test event, a kill delivered and shown in the delivery log, disable.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { startReceiver, type Receiver } from '../webhooks/receiver.js';
import { launchBrowser } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

let srv: TestServer;
let browser: Browser;
let rx: Receiver;
const pageErrors: string[] = [];

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  rx = await startReceiver();
  await api(srv).post('/api/v1/flags', { key: 'checkout', kind: 'boolean' });
  await api(srv).post('/api/v1/flags/checkout/environments/production/revive', {});
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await rx?.close();
  await srv?.close();
});

describe('webhooks in the console', () => {
  it('creates a webhook showing its secret once, sends a test event, shows deliveries, disables it', async () => {
    const p = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    p.setDefaultTimeout(8000);
    p.on('pageerror', (e) => pageErrors.push(e.message));
    await p.goto(srv.url + '/');
    await p.getByLabel('Admin token').fill(srv.adminToken);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.locator('table.flags').waitFor();
    await p.getByRole('link', { name: 'Webhooks' }).click();
    await p.getByRole('heading', { name: 'Webhooks' }).waitFor();
    await p.getByLabel('URL').fill(rx.url);
    await p.getByLabel('Webhook name').fill('ops');
    await p.getByRole('button', { name: 'Create webhook' }).click();
    const secret = (await p.getByTestId('new-secret').locator('code').textContent())!;
    expect(secret).toMatch(/^whsec_/);
    await p.getByRole('button', { name: 'Done, hide it' }).click();
    await p.getByRole('heading', { name: /ops/ }).waitFor();
    expect(await p.getByTestId('new-secret').count()).toBe(0);

    await p.getByRole('button', { name: 'Send test event to ops' }).click();
    const [test] = await rx.waitFor(1);
    expect(JSON.parse(test!.body).type).toBe('webhook.test');
    await api(srv).post('/api/v1/flags/checkout/environments/production/kill', { reason: 'from the test' });
    const [, killed] = await rx.waitFor(2);
    const verified = new Webhook(secret).verify(killed!.body, killed!.headers as Record<string, string>) as { type: string };
    expect(verified.type).toBe('flag.killed');

    await p.getByRole('button', { name: 'Deliveries of ops' }).click();
    await expect.poll(async () => p.locator('table.deliveries tr[data-status="delivered"]').count(), { timeout: 8000 }).toBe(2);
    expect(await p.locator('table.deliveries').textContent()).toContain('flag.killed');

    await p.getByRole('button', { name: 'Disable ops' }).click();
    await p.getByRole('button', { name: 'Enable ops' }).waitFor();
    expect((await api(srv).get('/api/v1/webhooks')).body.webhooks[0]).toMatchObject({ enabled: false, disabledReason: 'disabled by an operator' });
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
