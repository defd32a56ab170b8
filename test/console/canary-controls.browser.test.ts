/**
 * Canary controls that match the API (issue 18, item 5), in headless Chromium against a real server and real SDKs:
 * the start form takes the guard settings of the Canary schema (defaults explained beside each field; empty fields
 * get the server's defaults; bad values get the API's message and start nothing), and the charts are per minute with
 * a boundary at the time each stage started (from the canary's audit entries).
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@aviary/sdk';
import { api, startServer } from '../helpers/server.js';
import { launchBrowser, signedInPage } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

const ON = { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } };

let browser: Browser;

beforeAll(async () => {
  await ensureConsoleBuilt();
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

describe('canary controls', () => {
  it('starts a canary with custom guard settings from the form; empty fields get the defaults; bad values the API’s message', async () => {
    const srv = await startServer();
    let page: Page | undefined;
    try {
      const a = api(srv);
      expect((await a.post('/api/v1/flags', { key: 'search-v2', kind: 'boolean' })).status).toBe(201);
      expect((await a.put('/api/v1/flags/search-v2/environments/production', ON)).status).toBe(200);
      const signed = await signedInPage(browser, srv);
      page = signed.page;
      await page.goto(`${srv.url}/flags/search-v2/canary`);
      const form = page.getByRole('form', { name: 'Start a canary' });
      await form.waitFor();
      // Each guard setting is described by its default.
      const hint = async (label: string) => {
        const id = await form.getByLabel(label).getAttribute('aria-describedby');
        return page!.locator(`[id="${id}"]`).textContent();
      };
      expect(await hint('Max error-rate increase (percentage points)')).toContain('Default 1 point (0.01)');
      expect(await hint('Max latency increase (%)')).toContain('Default 20 %');
      expect(await hint('Minimum samples per side')).toContain('Default 500');
      expect(await hint('Confidence')).toContain('Default 0.95');
      expect(await hint('Hold each stage (seconds)')).toContain('Default 1800');

      await form.getByLabel('Stages').fill('1, 50, 100');
      await form.getByLabel('Hold each stage (seconds)').fill('120');
      await form.getByLabel('Bucket by (context attribute)').fill('accountId');
      await form.getByLabel('Max error-rate increase (percentage points)').fill('0.5');
      await form.getByLabel('Max latency increase (%)').fill('35');
      await form.getByLabel('Minimum samples per side').fill('200');
      await form.getByLabel('Confidence').fill('1.5');
      await form.getByRole('button', { name: 'Start canary' }).click();
      // The API's validation message, naming the field; nothing started.
      await expect.poll(() => form.getByRole('alert').textContent()).toMatch(/guard\/confidence/);
      expect((await a.get('/api/v1/flags/search-v2/environments/production/canary')).status).toBe(404);

      await form.getByLabel('Confidence').fill('');
      await form.getByRole('button', { name: 'Start canary' }).click();
      await expect.poll(() => page!.getByTestId('canary-state').textContent()).toBe('running');
      const got = await a.get('/api/v1/flags/search-v2/environments/production/canary');
      expect(got.status).toBe(200);
      expect(got.body).toMatchObject({
        control: 'off',
        canary: 'on',
        bucketBy: 'accountId',
        stages: [{ percent: 1 }, { percent: 50 }, { percent: 100 }],
        stageDurationSeconds: 120,
        // Confidence left empty: the server's default.
        guard: { maxErrorRateIncrease: 0.005, maxLatencyIncreasePercent: 35, minSamples: 200, confidence: 0.95 },
      });
      const audit = await a.get('/api/v1/audit?flag=search-v2&action=canary.start');
      expect(audit.body.entries).toHaveLength(1);
      expect(signed.errors).toEqual([]);
    } finally {
      await page?.close();
      await srv.close();
    }
  });

  it('marks each stage start on the per-minute charts', async () => {
    // A server whose clock the test drives: nine minutes of a canary with stages of three minutes take a second.
    let t = Math.floor((Date.now() - 12 * 60_000) / 60_000) * 60_000 + 5_000;
    const srv = await startServer({ now: () => t });
    const client = createClient({
      baseUrl: srv.url,
      sdkKey: srv.sdkKeys.production,
      now: () => t,
      flushIntervalMs: 0,
      app: { name: 'search', version: '2.0.0' },
    });
    let page: Page | undefined;
    try {
      const a = api(srv);
      expect((await a.post('/api/v1/flags', { key: 'ranking', kind: 'boolean' })).status).toBe(201);
      expect((await a.put('/api/v1/flags/ranking/environments/production', ON)).status).toBe(200);
      const canary = '/api/v1/flags/ranking/environments/production/canary';
      const started = await a.put(canary, {
        control: 'off',
        canary: 'on',
        stages: [{ percent: 10 }, { percent: 25 }, { percent: 50 }, { percent: 100 }],
        stageDurationSeconds: 180,
        guard: { minSamples: 1_000_000 },
      });
      expect(started.status, JSON.stringify(started.body)).toBeLessThan(300);
      await client.ready();
      const onShare = () => Array.from({ length: 400 }, (_, i) => client.variation('ranking', { key: `user-${i}` }, false)).filter(Boolean).length;
      await expect.poll(onShare, { timeout: 5000 }).toBeGreaterThan(10);
      const minutes = 9;
      const stageTimes = [Math.floor(t / 1000)];
      for (let m = 0; m < minutes; m++) {
        if (m === 3 || m === 6) {
          const before = onShare();
          stageTimes.push(Math.floor(t / 1000));
          expect((await a.post(`${canary}/advance`, { reason: 'next stage' })).status).toBe(200);
          await expect.poll(onShare, { timeout: 5000 }).toBeGreaterThan(before);
        }
        for (let i = 0; i < 200; i++) {
          const ctx = { key: `user-${i}` };
          const on = client.variation('ranking', ctx, false);
          client.track('ranking', ctx, { error: (i * 7919 + m) % 100 < (on ? 3 : 1), latencyMs: (on ? 120 : 100) + (i % 40) });
        }
        await client.flush();
        t += 60_000;
      }
      const signed = await signedInPage(browser, srv);
      page = signed.page;
      await page.goto(`${srv.url}/flags/ranking/canary`);
      // Per minute: one row (and point) per minute with outcomes.
      await expect.poll(() => page!.locator('figure[aria-label="Error rate"] details tbody tr').count()).toBe(minutes);
      await expect.poll(() => page!.locator('[data-testid="charts"] .uplot canvas').count()).toBe(2);
      // As many boundaries as stages started (10 %, 25 %, 50 %), on each chart, left to right in stage order.
      for (const chart of ['Error rate', 'p95 latency']) {
        const marks = page.locator(`figure[aria-label="${chart}"] .chart-mark`);
        await expect.poll(() => marks.count()).toBe(3);
        expect(await marks.evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.stage))).toEqual(['10%', '25%', '50%']);
        const lefts = await marks.evaluateAll((els) => els.map((e) => parseFloat((e as HTMLElement).style.left)));
        expect(lefts[0]! < lefts[1]! && lefts[1]! < lefts[2]!).toBe(true);
        // Three minutes apart on the axis: the gaps are equal (to a pixel).
        expect(Math.abs(lefts[1]! - lefts[0]! - (lefts[2]! - lefts[1]!))).toBeLessThan(1.5);
      }
      const status = (await a.get(canary)).body;
      expect(status.stage).toBe(2);
      // The stage starts the page marks are the times the canary started and advanced.
      const described = (await page.locator('figure[aria-label="Error rate"] p.sr-only').textContent())!;
      for (const [i, label] of ['10%', '25%', '50%'].entries())
        expect(described).toContain(`${label} at ${await page.evaluate((s) => new Date(s * 1000).toLocaleTimeString(), stageTimes[i]!)}`);
      expect(signed.errors).toEqual([]);
    } finally {
      await page?.close();
      await client.close();
      await srv.close();
    }
  });
});
