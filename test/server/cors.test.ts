/** CORS on the routes an SDK key calls: any origin (keys are public, sent in a header, never a cookie); none on the admin API. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer();
});
afterAll(async () => {
  await srv.close();
});

const ORIGIN = 'https://shop.example';

describe('CORS', () => {
  it.each(['/sdk/v1/metrics', '/sdk/v1/evaluate', '/sdk/v1/flags', '/ofrep/v1/evaluate/flags'])(
    'answers the preflight of %s without a key',
    async (path) => {
      const res = await fetch(srv.url + path, {
        method: 'OPTIONS',
        headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
      });
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(res.headers.get('access-control-allow-methods')).toBe('GET, POST');
      expect(res.headers.get('access-control-allow-headers')).toContain('authorization');
      expect(res.headers.get('access-control-allow-headers')).toContain('content-type');
    },
  );

  it('marks answers to a browser (a request with an Origin) readable from any origin, and only those', async () => {
    const auth = { authorization: `Bearer ${srv.sdkKeys.production}` };
    const browser = await fetch(`${srv.url}/sdk/v1/flags`, { headers: { ...auth, origin: ORIGIN } });
    expect(browser.status).toBe(200);
    expect(browser.headers.get('access-control-allow-origin')).toBe('*');
    expect(browser.headers.get('access-control-expose-headers')).toBe('etag, retry-after');
    // A refusal is readable too, so a page can tell a bad key from a network error.
    const refused = await fetch(`${srv.url}/sdk/v1/flags`, { headers: { authorization: 'Bearer nope', origin: ORIGIN } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe('*');
    const server = await fetch(`${srv.url}/sdk/v1/flags`, { headers: auth });
    expect(server.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('the admin API answers no preflight and sends no CORS headers (the console is same-origin)', async () => {
    const pre = await fetch(`${srv.url}/api/v1/flags`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } });
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    const res = await fetch(`${srv.url}/api/v1/flags`, { headers: { authorization: `Bearer ${srv.adminToken}`, origin: ORIGIN } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});
