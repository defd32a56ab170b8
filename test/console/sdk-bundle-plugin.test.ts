/**
 * `GET /sdk/v1/aviary.js`: the SDK's browser bundle served by the server itself, so a page loads it with one module
 * script. Public (no SDK key), loadable from any origin, revalidated by ETag, gzipped on request, with its source map
 * beside it; a bundle rebuilt on disk is served without a restart, and a missing one is a problem document.
 */
import { request as httpRequest } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { problemErrorHandler, problemNotFoundHandler } from '../../server/errors.js';
import { sdkBundlePlugin } from '../../server/console/sdk-bundle-plugin.js';
import { ensureSdkBundle } from '../helpers/sdk-bundle.js';
import { startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
let built: string;

/** A raw GET (fetch would ask for and undo compression itself). */
function rawGet(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  built = readFileSync(ensureSdkBundle(), 'utf8');
  srv = await startServer();
});

afterAll(async () => {
  await srv?.close();
});

describe('the SDK browser bundle route', () => {
  it('serves the built bundle without an SDK key, as JavaScript any origin may load, naming its source map', async () => {
    const res = await rawGet(`${srv.url}/sdk/v1/aviary.js`, { origin: 'https://shop.example' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.headers['cross-origin-resource-policy']).toBe('cross-origin');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['cache-control']).toBe('public, max-age=300');
    expect(res.headers['content-encoding']).toBeUndefined();
    const code = res.body.toString('utf8');
    // The file as built, except that its last line names the map by the name it is served under.
    expect(built.trimEnd().endsWith('//# sourceMappingURL=aviary.browser.js.map')).toBe(true);
    expect(code).toBe(built.replace(/\/\/# sourceMappingURL=aviary\.browser\.js\.map\n$/, '//# sourceMappingURL=aviary.js.map\n'));
    expect(code).toContain('createClient');

    const mapUrl = new URL(/\/\/# sourceMappingURL=(\S+)\n$/.exec(code)![1]!, `${srv.url}/sdk/v1/aviary.js`);
    const map = await rawGet(mapUrl.href);
    expect(map.status).toBe(200);
    expect(map.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(map.headers['access-control-allow-origin']).toBe('*');
    const parsed = JSON.parse(map.body.toString('utf8')) as { version: number; sources: string[]; sourcesContent: string[] };
    expect(parsed.version).toBe(3);
    expect(parsed.sources.some((s) => s.endsWith('client.ts'))).toBe(true);
    expect(parsed.sourcesContent.length).toBe(parsed.sources.length);
  });

  it('answers If-None-Match with 304 by weak comparison, and a changed tag with the bundle', async () => {
    const first = await rawGet(`${srv.url}/sdk/v1/aviary.js`);
    const etag = String(first.headers.etag);
    expect(etag).toMatch(/^W\/"[A-Za-z0-9_-]{27}"$/);
    for (const header of [etag, etag.slice(2), `"other", ${etag}`, '*']) {
      const res = await rawGet(`${srv.url}/sdk/v1/aviary.js`, { 'if-none-match': header });
      expect(res.status, header).toBe(304);
      expect(res.body.length).toBe(0);
      expect(res.headers.etag).toBe(etag);
      expect(res.headers['cache-control']).toBe('public, max-age=300');
    }
    const changed = await rawGet(`${srv.url}/sdk/v1/aviary.js`, { 'if-none-match': 'W/"older"' });
    expect(changed.status).toBe(200);
    expect(changed.body.equals(first.body)).toBe(true);
  });

  it('sends it gzipped to clients that accept gzip, with the same ETag', async () => {
    const plain = await rawGet(`${srv.url}/sdk/v1/aviary.js`, { 'accept-encoding': 'identity' });
    const gz = await rawGet(`${srv.url}/sdk/v1/aviary.js`, { 'accept-encoding': 'br;q=1, gzip;q=0.8' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gz.headers.vary).toBe('accept-encoding');
    expect(gunzipSync(gz.body).equals(plain.body)).toBe(true);
    expect(gz.body.length).toBeLessThan(plain.body.length / 2);
    expect(gz.headers.etag).toBe(plain.headers.etag);
    const refused = await rawGet(`${srv.url}/sdk/v1/aviary.js`, { 'accept-encoding': 'gzip;q=0' });
    expect(refused.headers['content-encoding']).toBeUndefined();
    expect(refused.body.equals(plain.body)).toBe(true);
  });
});

describe('the plugin on a directory of its own', () => {
  let dir: string;
  let app: FastifyInstance;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aviary-bundle-'));
    app = Fastify();
    app.setErrorHandler(problemErrorHandler);
    app.setNotFoundHandler(problemNotFoundHandler);
    await app.register(sdkBundlePlugin, { dir });
    await app.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 503 problem+json before a build, then serves each rebuilt bundle without a restart', async () => {
    const address = app.server.address();
    const base = typeof address === 'object' && address ? `http://127.0.0.1:${address.port}` : '';
    for (const path of ['/sdk/v1/aviary.js', '/sdk/v1/aviary.js.map']) {
      const missing = await rawGet(base + path);
      expect(missing.status).toBe(503);
      expect(missing.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(missing.body.toString('utf8'))).toMatchObject({
        status: 503,
        type: 'https://aviary.dev/problems/unavailable',
        detail: expect.stringContaining('npm run build'),
      });
    }

    writeFileSync(join(dir, 'aviary.browser.js'), 'export const build = 1;\n//# sourceMappingURL=aviary.browser.js.map\n');
    const one = await rawGet(`${base}/sdk/v1/aviary.js`);
    expect(one.status).toBe(200);
    expect(one.body.toString('utf8')).toBe('export const build = 1;\n//# sourceMappingURL=aviary.js.map\n');

    writeFileSync(join(dir, 'aviary.browser.js'), 'export const build = 22;\n//# sourceMappingURL=aviary.browser.js.map\n');
    const two = await rawGet(`${base}/sdk/v1/aviary.js`, { 'if-none-match': String(one.headers.etag) });
    expect(two.status).toBe(200);
    expect(two.body.toString('utf8')).toBe('export const build = 22;\n//# sourceMappingURL=aviary.js.map\n');
    expect(two.headers.etag).not.toBe(one.headers.etag);
  });
});
