import { afterEach, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

describe('boot', () => {
  it('creates development, staging and production on first boot', async () => {
    srv = await startServer();
    const res = await api(srv).get('/api/v1/environments');
    expect(res.status).toBe(200);
    expect(res.body.environments.map((e: { key: string }) => e.key)).toEqual(['development', 'staging', 'production']);
  });

  it('serves an empty snapshot of the SDK key environment with an ETag and answers 304 when unchanged', async () => {
    srv = await startServer();
    const res = await api(srv).get('/sdk/v1/flags', { token: srv.sdkKeys.staging });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ environment: 'staging', flags: [], segments: [] });
    const etag = res.headers.get('etag')!;
    expect(etag).toBeTruthy();
    const again = await api(srv).get('/sdk/v1/flags', { token: srv.sdkKeys.staging, headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
  });

  it('answers unknown routes with a problem document', async () => {
    srv = await startServer();
    const res = await api(srv).get('/api/v1/nope');
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body).toMatchObject({ type: 'https://aviary.dev/problems/not-found', status: 404 });
  });
});

describe('boot configuration errors', () => {
  it('refuses an SDK key for an environment that does not exist, naming the variable', async () => {
    const { buildApp } = await import('../../server/app.js');
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'aviary-boot-'));
    try {
      await expect(buildApp({ dbPath: join(dir, 'a.db'), sdkKeys: { 'eu-west': 'some-sdk-key-0123456789' } })).rejects.toThrow(
        /AVIARY_SDK_KEY_EU_WEST/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
