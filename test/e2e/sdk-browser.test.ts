/**
 * The SDK in a real browser (headless Chromium, test/console/browser.ts): the shipped browser bundle (`sdk/scripts/bundle.mjs`, the
 * file whose size is reported) connects with the browser's own WebSocket, authenticating through
 * `Sec-WebSocket-Protocol`, and applies a streamed kill; and a page on another origin loads it from the server
 * (`GET /sdk/v1/aviary.js`) with one module script, as sdk/README.md shows.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchBrowser } from '../console/browser.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { booleanFlag, kill } from '../stream/fixtures.js';

const SDK = join(import.meta.dirname, '../../sdk');
let browser: Browser;
let srv: TestServer;
let bundle: string;

beforeAll(async () => {
  execFileSync(process.execPath, [join(SDK, 'scripts/bundle.mjs')]);
  bundle = readFileSync(join(SDK, 'dist/aviary.browser.js'), 'utf8');
  browser = await launchBrowser();
  srv = await startServer();
});

afterAll(async () => {
  await browser?.close();
  await srv?.close();
});

it('runs in a browser with its native WebSocket, the key in the subprotocol, and applies a streamed kill', async () => {
  expect(bundle).not.toMatch(/require\(["']ws["']\)|import\(["']ws["']\)/);
  await booleanFlag(srv, 'new-checkout');
  const page = await browser.newPage();
  // A page from the loopback server itself: chromium blocks public pages (about:blank) from reaching loopback.
  await page.goto(srv.url + '/healthz');
  // The ES module as shipped, imported from a blob: URL of the page's own origin. (The import is spelled in a string:
  // vitest rewrites `import()` in this file's functions, and this one runs in the page.)
  await page.evaluate(async (code) => {
    const url = URL.createObjectURL(new Blob([code], { type: 'text/javascript' }));
    const load = new Function('url', 'return import(url)') as (url: string) => Promise<unknown>;
    (window as unknown as { Aviary: unknown }).Aviary = await load(url);
  }, bundle);
  const first = await page.evaluate(
    async ({ baseUrl, sdkKey }) => {
      const w = window as unknown as { Aviary: typeof import('@aviary/sdk'); client: import('@aviary/sdk').AviaryClient; changes: string[][] };
      w.changes = [];
      w.client = w.Aviary.createClient({ baseUrl, sdkKey, flushIntervalMs: 0 });
      const before = w.client.variationDetail('new-checkout', { key: 'u' }, false);
      await w.client.ready(5_000);
      w.client.on('change', (keys) => w.changes.push(keys));
      return { before, after: w.client.variationDetail('new-checkout', { key: 'u' }, false) };
    },
    { baseUrl: srv.url, sdkKey: srv.sdkKeys.production },
  );
  expect(first.before).toMatchObject({ value: false, reason: { kind: 'ERROR', errorCode: 'NOT_READY' } });
  expect(first.after).toMatchObject({ value: true, reason: { kind: 'FALLTHROUGH' } });
  expect(srv.app.streamHub.list('production')).toHaveLength(1);

  const body = await kill(srv, 'new-checkout', 'production', 3_000);
  expect(body.delivery).toMatchObject({ connected: 1, applied: 1, complete: true });
  const after = await page.evaluate(() => {
    const w = window as unknown as { client: import('@aviary/sdk').AviaryClient; changes: string[][] };
    return { value: w.client.variation('new-checkout', { key: 'u' }, true), changes: w.changes };
  });
  expect(after).toEqual({ value: false, changes: [['new-checkout']] });
  await page.close();
});

/**
 * A web app's own origin: a page served from another port on loopback, so whatever it loads from or sends to the
 * server is a cross-origin (CORS) request. Answers the site, its origin, a browser page and the page's errors.
 */
async function appOnAnotherOrigin(html: string) {
  const site: Server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html));
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  const address = site.address();
  const origin = typeof address === 'object' && address ? `http://127.0.0.1:${address.port}` : '';
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  return { site, origin, page, problems };
}

it('a page on another origin loads the SDK from the server with one module script (the README example) and follows a kill', async () => {
  const own = await startServer();
  // The browser example of sdk/README.md, pointed at this server.
  const example = /```html\n([\s\S]*?)```/.exec(readFileSync(join(SDK, 'README.md'), 'utf8'))?.[1];
  expect(example).toContain('<script type="module">');
  const html = example!.replaceAll('http://127.0.0.1:4242', own.url).replaceAll('<sdk key>', own.sdkKeys.production);
  expect(html.match(/<script/g)).toHaveLength(1);
  const { site, origin, page, problems } = await appOnAnotherOrigin(html);
  try {
    await booleanFlag(own, 'new-checkout');
    const bundleResponse = page.waitForResponse(`${own.url}/sdk/v1/aviary.js`, { timeout: 5_000 });
    await page.goto(origin + '/');
    const res = await bundleResponse;
    expect(res.status()).toBe(200);
    expect(res.request().headers().origin).toBe(origin);
    await expect.poll(() => page.locator('#checkout').textContent(), { timeout: 5_000 }).toBe('new');
    await kill(own, 'new-checkout');
    await expect.poll(() => page.locator('#checkout').textContent(), { timeout: 5_000 }).toBe('old');
    expect(problems).toEqual([]);
  } finally {
    await page.close();
    await new Promise((resolve) => site.close(resolve));
    await own.close();
  }
});

it('a web app on another origin reports its counts and outcomes with a client-side key (CORS on the SDK routes)', async () => {
  const own = await startServer();
  const { site, origin, page, problems } = await appOnAnotherOrigin('<p>app</p>');
  try {
    await booleanFlag(own, 'new-checkout');
    const created = await fetch(`${own.url}/api/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${own.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'sdk', environment: 'production', name: 'web app', clientSide: true }),
    });
    const { token } = (await created.json()) as { token: string };
    await page.goto(origin + '/');
    // In the page: the shipped bundle from the server, a client with the public key, one evaluation, one outcome, a
    // flush (a cross-origin POST with Authorization and JSON: preflighted), and a server-side evaluation too.
    const result = await page.evaluate(
      async ([baseUrl, sdkKey]) => {
        const url = `${baseUrl}/sdk/v1/aviary.js`;
        // Spelled in a string: vitest rewrites import() expressions in test files, and this one runs in the page.
        const load = new Function('u', 'return import(u)') as (u: string) => Promise<typeof import('@aviary/sdk')>;
        const { createClient } = await load(url);
        const client = createClient({ baseUrl, sdkKey, flushIntervalMs: 0 });
        await client.ready();
        const value = client.variation('new-checkout', { key: 'user-1' }, false);
        client.track('new-checkout', { key: 'user-1' }, { error: false, latencyMs: 12 });
        await client.flush();
        const evaluated = await fetch(`${baseUrl}/sdk/v1/evaluate`, {
          method: 'POST',
          headers: { authorization: `Bearer ${sdkKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ context: { key: 'user-1' }, flags: ['new-checkout'] }),
        });
        await client.close();
        return { value, evaluate: evaluated.status };
      },
      [own.url, token] as const,
    );
    expect(result).toEqual({ value: true, evaluate: 200 });
    const metrics = await fetch(`${own.url}/api/v1/flags/new-checkout/environments/production/metrics`, {
      headers: { authorization: `Bearer ${own.adminToken}` },
    });
    const body = (await metrics.json()) as { totals: Record<string, { evaluations: number; outcomes: number }> };
    expect(body.totals.on).toMatchObject({ evaluations: 1, outcomes: 1 });
    expect(problems).toEqual([]);
  } finally {
    await page.close();
    await new Promise((resolve) => site.close(resolve));
    await own.close();
  }
});
