/**
 * The console plugin on the real server: the page at `/` and at client-side routes (flag keys contain dots), assets
 * with long-lived caching, security headers, and never answering for the API's prefixes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isReservedPath } from '../../server/console/console-plugin.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { ensureConsoleBuilt } from './build-console.js';

let srv: TestServer;

beforeAll(async () => {
  await ensureConsoleBuilt();
  srv = await startServer();
}, 60_000);

afterAll(async () => {
  await srv?.close();
});

describe('console plugin', () => {
  it('serves the page at / and at client-side routes, revalidated, with a strict CSP', async () => {
    for (const path of ['/', '/flags/search.v2', '/flags/new-checkout/canary', '/audit', '/tokens']) {
      const res = await fetch(srv.url + path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(await res.text()).toContain('<div id="app"></div>');
    }
  });

  it('serves hashed assets as immutable, and a missing asset as a 404 problem', async () => {
    const html = await (await fetch(srv.url + '/')).text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const js = await fetch(srv.url + script!);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    expect(js.headers.get('cache-control')).toContain('immutable');
    // Read it whole: an unread body holds the response (and the server's close) open.
    expect((await js.text()).length).toBeGreaterThan(1000);
    const missing = await fetch(srv.url + '/assets/index-gone.js');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await missing.json()).status).toBe(404);
  });

  it('never shadows the API: unknown API paths stay problem+json 404s, real routes answer as before', async () => {
    for (const path of ['/api/v1/nope', '/api', '/sdk/v1/nope', '/ofrep/v1/nope', '/openapi.json/x', '/metrics/x']) {
      const res = await fetch(srv.url + path, { headers: { authorization: `Bearer ${srv.adminToken}` } });
      expect(res.status, path).toBe(404);
      expect(res.headers.get('content-type'), path).toMatch(/^application\/problem\+json/);
    }
    expect((await fetch(srv.url + '/healthz')).status).toBe(200);
    expect((await fetch(srv.url + '/openapi.json')).headers.get('content-type')).toMatch(/json/);
    const flags = await fetch(srv.url + '/api/v1/flags', { headers: { authorization: `Bearer ${srv.adminToken}` } });
    expect(flags.status).toBe(200);
    expect(await flags.json()).toHaveProperty('flags');
    // No token: the API's own 401, not the page.
    expect((await fetch(srv.url + '/api/v1/flags')).status).toBe(401);
  });

  it('reserves whole path segments only', () => {
    expect(isReservedPath('/api/v1/flags?x=1')).toBe(true);
    expect(isReservedPath('/metrics')).toBe(true);
    expect(isReservedPath('/metricsboard')).toBe(false);
    expect(isReservedPath('/apis')).toBe(false);
    expect(isReservedPath('/flags/api')).toBe(false);
  });
});
