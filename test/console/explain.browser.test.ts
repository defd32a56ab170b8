/**
 * The evaluation explainer on the flag page, in headless Chromium against the real server and a real SDK: a context
 * described without JSON, explained on a rule match (each condition with the actual value) and on a rollout (the
 * bucket against the ranges), and the answer is what the SDK serves.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { bucket } from '@aviary/sdk/core';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, signedInPage } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';
import { shot } from './screenshots.js';

let srv: TestServer;
let browser: Browser;
let page: Page;
let errors: string[] = [];
let sdk: AviaryClient;

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
  const a = api(srv);
  expect((await a.post('/api/v1/flags', { key: 'new-checkout', kind: 'boolean' })).status).toBe(201);
  const put = await a.put('/api/v1/flags/new-checkout/environments/production', {
    enabled: true,
    offVariant: 'off',
    targets: [],
    rules: [
      {
        id: 'pro-plans',
        conditions: [
          { attribute: 'plan', op: 'in', values: ['pro', 'team'] },
          { attribute: 'seats', op: 'gte', values: [5] },
        ],
        serve: { variant: 'on' },
      },
    ],
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'on', percent: 30 },
          { variant: 'off', percent: 70 },
        ],
      },
    },
  });
  expect(put.status, JSON.stringify(put.body)).toBe(200);
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
  await sdk.ready();
  browser = await launchBrowser();
  ({ page, errors } = await signedInPage(browser, srv));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await sdk?.close();
  await srv?.close();
});

async function describeContext(key: string, attributes: Array<[string, 'text' | 'number', string]>): Promise<void> {
  await page.getByLabel('Context key').fill(key);
  for (let i = 0; i < attributes.length; i++) {
    if (i > 0) await page.getByRole('button', { name: 'Add attribute' }).click();
    const [name, type, value] = attributes[i]!;
    await page.getByLabel(`Attribute ${i + 1} name`).fill(name);
    await page.getByLabel(`Attribute ${i + 1} type`).selectOption(type);
    await page.getByLabel(`Attribute ${i + 1} value`).fill(value);
  }
  await page.getByRole('button', { name: 'Explain', exact: true }).click();
}

describe('why this variant?', () => {
  it('explains a rule match: each condition, the actual values, and the SDK agrees', async () => {
    await page.goto(srv.url + '/flags/new-checkout');
    await page.getByRole('tab', { name: 'Why this variant?' }).click();
    await describeContext('acme-admin', [
      ['plan', 'text', 'team'],
      ['seats', 'number', '12'],
    ]);
    const result = page.getByTestId('explain-result');
    await result.waitFor();
    expect(await result.textContent()).toMatch(/^Serves on — RULE_MATCH \(rule pro-plans\)/);
    expect(sdk.variation('new-checkout', { key: 'acme-admin', plan: 'team', seats: 12 }, false)).toBe(true);
    const rule = page.locator('tr[data-rule="pro-plans"]');
    expect(await rule.getAttribute('class')).toBe('decided');
    await shot(page, 'explain', true);
    expect((await rule.locator('li').allTextContents()).map((t) => t.replace(/\s+/g, ' ').trim())).toEqual([
      '✓ plan is one of "pro", "team" ("team")',
      '✓ seats ≥ 5 (12)',
    ]);
    expect(errors).toEqual([]);
  });

  it('explains a rollout: the bucket against the ranges, the same bucket the SDK uses', async () => {
    await page.goto(srv.url + '/flags/new-checkout');
    await page.getByRole('tab', { name: 'Why this variant?' }).click();
    await describeContext('user-1234', [['plan', 'text', 'free']]);
    await page.getByTestId('explain-result').waitFor();
    const b = bucket('new-checkout', 'user-1234');
    const expected = b < 30_000 ? 'on' : 'off';
    expect(await page.getByTestId('explain-result').textContent()).toMatch(new RegExp(`^Serves ${expected} — FALLTHROUGH`));
    expect(await page.locator('[data-step="fallthrough"] [data-testid="bucket"]').textContent()).toBe(String(b));
    expect(await page.locator('[data-step="fallthrough"]').textContent()).toContain('on 0–29999, off 30000–99999');
    expect(await page.locator('tr[data-rule="pro-plans"] li').first().textContent()).toContain('✗ plan is one of');
    const detail = sdk.variationDetail('new-checkout', { key: 'user-1234', plan: 'free' }, false);
    expect(detail.variant).toBe(expected);
    expect(detail.reason.bucket).toBe(b);
    expect(errors).toEqual([]);
  });
});
