/**
 * Change requests in the console (headless Chromium against a real server and the real console build, a real SDK on
 * production): approval turned on from the page, a targeting save held as a request (the flag page says so), the
 * author's own approval refused, another admin approving and applying, and the SDK serving the result.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

let srv: TestServer;
let browser: Browser;
let sdk: AviaryClient;
let reviewerToken: string;
const pageErrors: string[] = [];

async function signedIn(token: string): Promise<Page> {
  const p = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  p.setDefaultTimeout(8000);
  p.on('pageerror', (e) => pageErrors.push(e.message));
  await p.goto(srv.url + '/');
  await p.getByLabel('Admin token').fill(token);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.locator('table.flags').waitFor();
  return p;
}

const stateOf = async () => (await api(srv).get('/api/v1/flags/checkout/environments/production')).body as { offVariant: string; version: number };

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  const a = api(srv);
  await a.post('/api/v1/flags', { key: 'checkout', kind: 'boolean', description: 'The checkout' });
  reviewerToken = (await a.post('/api/v1/tokens', { kind: 'admin', name: 'reviewer' })).body.token;
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
  await sdk.ready();
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await sdk?.close();
  await srv?.close();
});

describe('change requests in the console', () => {
  it('a save becomes a request; the author cannot approve it; another admin approves and applies it; the SDK serves it', async () => {
    const author = await signedIn(srv.adminToken);
    await author.getByRole('link', { name: 'Change requests' }).click();
    await author.getByRole('heading', { name: 'Change requests in production' }).waitFor();
    await author.getByLabel('Require approval for targeting changes in production').check();
    await expect.poll(async () => (await api(srv).get('/api/v1/environments/production')).body.requireApproval).toBe(true);

    // The flag page: a targeting change is held, and the editor says so.
    await author.goto(srv.url + '/flags/checkout');
    await author.getByRole('heading', { name: 'Targeting in production' }).waitFor();
    await author.getByLabel('Off variant (served when killed)').selectOption('on');
    await author.getByRole('button', { name: 'Save targeting' }).click();
    await expect.poll(() => author.getByRole('status').filter({ hasText: 'requires approval' }).count()).toBe(1);
    expect(await stateOf()).toMatchObject({ offVariant: 'off', version: 1 });
    expect(sdk.variationDetail('checkout', { key: 'u' }, true).variant).toBe('off');
    const [request] = (await api(srv).get('/api/v1/change-requests?status=pending')).body.changeRequests;
    expect(request).toMatchObject({ flag: 'checkout', state: { offVariant: 'on' } });

    // The list shows it with its diff; the author's approval is refused.
    await author.getByRole('link', { name: 'change request', exact: true }).click();
    const card = author.locator(`article[data-id="${request.id}"]`);
    await card.waitFor();
    const diff = card.getByRole('table', { name: /Changes against the current state/ });
    expect(await diff.locator('tr[data-op="replace"] td').allTextContents()).toEqual(['/offVariant', '"off"', '"on"']);
    await card.getByRole('button', { name: 'Approve' }).click();
    await expect.poll(async () => (await author.getByRole('alert').textContent()) ?? '').toMatch(/another actor/);
    expect((await api(srv).get(`/api/v1/change-requests/${request.id}`)).body.status).toBe('pending');

    // Another admin approves, then applies; the SDK gets the new state.
    const reviewer = await signedIn(reviewerToken);
    await reviewer.goto(srv.url + '/change-requests');
    const theirCard = reviewer.locator(`article[data-id="${request.id}"]`);
    await theirCard.getByRole('button', { name: 'Approve' }).click();
    await reviewer.locator(`article[data-id="${request.id}"][data-status="approved"]`).waitFor();
    await theirCard.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(async () => (await stateOf()).offVariant).toBe('on');
    await expect.poll(() => sdk.variationDetail('checkout', { key: 'u' }, false).variant).toBe('on');
    // Applied requests leave the open list.
    await expect.poll(() => reviewer.locator(`article[data-id="${request.id}"]`).count()).toBe(0);
    expect(pageErrors).toEqual([]);
  });
});
