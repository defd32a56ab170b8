/**
 * The typed admin API client (@aviary/api-client) against a real server: bodies typed from the spec, problem
 * documents as ApiError (status, field errors), the token read on every request, ETag/If-Match, 204s, and
 * UnreachableError when nothing (or nothing in time) answers.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, UnreachableError, createApiClient, describeProblem, isChangeRequest, type ApiClient } from '@aviary/api-client';
import { startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
let api: ApiClient;

beforeAll(async () => {
  srv = await startServer();
  api = createApiClient({ baseUrl: srv.url + '/', token: () => srv.adminToken });
});

afterAll(async () => {
  await srv?.close();
});

/** A plain HTTP server of the test's own (a proxy's error page, a server that never answers). */
async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('the typed admin API client', () => {
  it('resolves to the typed body of the success answer', async () => {
    const created = await api.post('/api/v1/flags', { body: { key: 'typed-flag', kind: 'boolean', tags: ['t'] } });
    expect(created).toMatchObject({ key: 'typed-flag', kind: 'boolean', tags: ['t'], archived: false });
    expect(created.variants.map((v) => v.key)).toEqual(['on', 'off']);
    const { environments } = await api.get('/api/v1/environments');
    expect(Object.keys(created.environments).sort()).toEqual(environments.map((e) => e.key).sort());
    const path = { key: 'typed-flag', env: 'staging' };
    const on = await api.put('/api/v1/flags/{key}/environments/{env}', {
      params: { path },
      body: { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } },
    });
    if (isChangeRequest(on)) throw new Error('staging does not require approval');
    const killed = await api.post('/api/v1/flags/{key}/environments/{env}/kill', { params: { path, query: { waitMs: 0 } }, body: { reason: 'r' } });
    expect(killed).toMatchObject({
      flag: 'typed-flag',
      environment: 'staging',
      enabled: false,
      killReason: 'r',
      changed: true,
      version: on.version + 1,
    });
    expect(killed.environmentVersion).toBeGreaterThan(on.environmentVersion);
    expect(killed.delivery).toMatchObject({ environment: 'staging', connected: 0, applied: 0, complete: true });
  });

  it('throws ApiError with the status and the problem document, field errors included; nothing is created', async () => {
    const e = await api.post('/api/v1/flags', { body: { key: 'Not A Key', kind: 'boolean' } }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ApiError);
    const err = e as ApiError;
    expect(err.status).toBe(400);
    expect(err.problem.status).toBe(400);
    expect(err.problem.type).toMatch(/validation/);
    expect(err.problem.errors?.map((i) => i.path)).toContain('/key');
    expect(err.message).toBe(describeProblem(err.problem));
    // Each issue once (the detail of a validation problem is its first issue), after the title.
    expect(err.message).toMatch(/^[^:]+: .*\/key: /);
    expect(err.message.split('/key: ')).toHaveLength(2);
    expect((await api.get('/api/v1/flags')).flags.map((f) => f.key)).not.toContain('Not A Key');

    const missing = await api.get('/api/v1/flags/{key}', { params: { path: { key: 'no-such-flag' } } }).catch((x: unknown) => x);
    expect(missing).toBeInstanceOf(ApiError);
    expect((missing as ApiError).status).toBe(404);
  });

  it('reads the token on every request (the console signs in and out without a new client)', async () => {
    let token: string | null = null;
    const console = createApiClient({ baseUrl: srv.url, token: () => token });
    const anonymous = await console.get('/api/v1/environments').catch((x: unknown) => x);
    expect(anonymous).toBeInstanceOf(ApiError);
    expect((anonymous as ApiError).status).toBe(401);
    token = srv.adminToken;
    expect((await console.get('/api/v1/environments')).environments.length).toBe(3);
    token = srv.sdkKeys.production;
    expect(((await console.get('/api/v1/environments').catch((x: unknown) => x)) as ApiError).status).toBe(403);
  });

  it('gives the ETag with request(), sends If-Match from params, and a stale one is a 412 that changes nothing', async () => {
    const path = { key: 'typed-flag', env: 'production' };
    const first = await api.request('get', '/api/v1/flags/{key}/environments/{env}', { params: { path } });
    expect(first.status).toBe(200);
    expect(first.etag).toBe(`"v${first.data.version}"`);
    const body = { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } };
    const written = await api.put('/api/v1/flags/{key}/environments/{env}', { params: { path, header: { 'If-Match': first.etag! } }, body });
    if (isChangeRequest(written)) throw new Error('production does not require approval');
    expect(written.version).toBe(first.data.version + 1);
    const stale = await api
      .put('/api/v1/flags/{key}/environments/{env}', { params: { path, header: { 'If-Match': first.etag! } }, body: { ...body, enabled: false } })
      .catch((x: unknown) => x);
    expect(stale).toBeInstanceOf(ApiError);
    expect((stale as ApiError).status).toBe(412);
    expect((await api.get('/api/v1/flags/{key}/environments/{env}', { params: { path } })).enabled).toBe(true);
  });

  it('resolves a 204 to undefined', async () => {
    await api.put('/api/v1/segments/{key}', { params: { path: { key: 'beta' } }, body: { included: ['u1'], excluded: [], rules: [] } });
    expect(await api.del('/api/v1/segments/{key}', { params: { path: { key: 'beta' } } })).toBeUndefined();
    const gone = await api.get('/api/v1/segments/{key}', { params: { path: { key: 'beta' } } }).catch((x: unknown) => x);
    expect((gone as ApiError).status).toBe(404);
  });

  it('an error answer that is not a problem document (a proxy page) is still an ApiError with its status', async () => {
    const { url, server } = await listen((_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad Gateway</h1>');
    });
    try {
      const e = await createApiClient({ baseUrl: url, token: () => 't' })
        .get('/api/v1/environments')
        .catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ApiError);
      expect((e as ApiError).status).toBe(502);
      expect((e as ApiError).message).toBe('Bad Gateway: <h1>Bad Gateway</h1>');
    } finally {
      server.close();
    }
  });

  it('UnreachableError when nothing listens, and when the answer does not come within the timeout', async () => {
    const { url, server } = await listen(() => {
      /* never answers */
    });
    try {
      const started = Date.now();
      const e = await createApiClient({ baseUrl: url, token: () => 't', timeoutMs: 300 })
        .get('/api/v1/environments')
        .catch((x: unknown) => x);
      expect(e).toBeInstanceOf(UnreachableError);
      expect((e as Error).message).toBe(`cannot reach ${url}: timed out`);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      server.closeAllConnections();
      server.close();
    }
    const closed = await new Promise<string>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const u = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
        s.close(() => resolve(u));
      });
    });
    const refused = await createApiClient({ baseUrl: closed, token: () => 't' })
      .get('/api/v1/environments')
      .catch((x: unknown) => x);
    expect(refused).toBeInstanceOf(UnreachableError);
    expect((refused as Error).message).toBe(`cannot reach ${closed}: ECONNREFUSED`);
  });
});
