/**
 * OFREP change events in a real browser (headless Chromium, test/console/browser.ts): the published
 * `@openfeature/web-sdk` + `@openfeature/ofrep-web-provider`, bundled as they are (esbuild), run in a page on another
 * origin with the browser's own EventSource (no headers: the advertised URL carries the ticket; CORS) and apply a
 * kill made through the admin API by push, with a 60 s poll interval.
 */
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchBrowser } from '../console/browser.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { checkoutAndBanner, kill } from '../stream/fixtures.js';

let browser: Browser;
let srv: TestServer;
let site: Server;
let origin: string;
let bundle: string;

beforeAll(async () => {
  const out = await build({
    stdin: {
      contents:
        "export { OpenFeature, ProviderEvents } from '@openfeature/web-sdk'; export { OFREPWebProvider } from '@openfeature/ofrep-web-provider';",
      resolveDir: join(import.meta.dirname, '../..'),
      loader: 'js',
    },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
  });
  bundle = out.outputFiles[0]!.text;
  browser = await launchBrowser();
  srv = await startServer();
  site = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<p>app</p>'));
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  const address = site.address();
  origin = typeof address === 'object' && address ? `http://127.0.0.1:${address.port}` : '';
});

afterAll(async () => {
  await browser?.close();
  await srv?.close();
  await new Promise((resolve) => site?.close(resolve));
});

it('the published web provider in a browser on another origin gets a kill by SSE push, not by its 60 s poll', async () => {
  await checkoutAndBanner(srv);
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  const streamRequest = page.waitForRequest((r) => r.url().startsWith(`${srv.url}/ofrep/v1/events?ticket=`), { timeout: 5_000 });
  await page.goto(origin + '/');
  const first = await page.evaluate(
    async ({ code, baseUrl, sdkKey }) => {
      const url = URL.createObjectURL(new Blob([code], { type: 'text/javascript' }));
      // Spelled in a string: vitest rewrites `import()` in this file's functions, and this one runs in the page.
      const load = new Function('url', 'return import(url)') as (url: string) => Promise<any>;
      const m = await load(url);
      const w = window as unknown as { of: any; changes: string[][] };
      w.changes = [];
      await m.OpenFeature.setContext({ targetingKey: 'vip' });
      await m.OpenFeature.setProviderAndWait(
        new m.OFREPWebProvider({ baseUrl, headers: [['Authorization', `Bearer ${sdkKey}`]], pollInterval: 60_000, cacheMode: 'disabled' }),
      );
      w.of = m.OpenFeature.getClient();
      w.of.addHandler(m.ProviderEvents.ConfigurationChanged, (d: { flagsChanged: string[] }) => w.changes.push(d.flagsChanged));
      return w.of.getBooleanValue('new-checkout', false) as boolean;
    },
    { code: bundle, baseUrl: srv.url, sdkKey: srv.sdkKeys.production },
  );
  expect(first).toBe(true);
  // The browser's EventSource opened the advertised URL: no Authorization header, an Origin (cross-origin, CORS).
  const req = await streamRequest;
  expect(req.headers().authorization).toBeUndefined();
  expect(req.headers().accept).toBe('text/event-stream');
  await expect.poll(() => srv.app.ofrepEvents.count(), { timeout: 5_000 }).toBe(1);

  const t0 = Date.now();
  await kill(srv, 'new-checkout');
  await expect
    .poll(() => page.evaluate(() => (window as unknown as { of: any }).of.getBooleanValue('new-checkout', true) as boolean), { timeout: 5_000 })
    .toBe(false);
  expect(Date.now() - t0).toBeLessThan(5_000);
  const changes = await page.evaluate(() => (window as unknown as { changes: string[][] }).changes);
  expect(changes.length).toBeGreaterThanOrEqual(1);
  expect(changes[0]).toContain('new-checkout');
  expect(problems).toEqual([]);
  await page.close();
  await expect.poll(() => srv.app.ofrepEvents.count(), { timeout: 5_000 }).toBe(0);
});
