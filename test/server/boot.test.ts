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
