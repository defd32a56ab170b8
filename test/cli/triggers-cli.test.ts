/**
 * `aviary triggers list|create|delete` against a real server, run as a child process: the URL printed once kills the
 * flag when called (the SDK switches); list never prints it; delete revokes it.
 */
import { createClient, type AviaryClient } from '@aviary/sdk';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { api, request, startServer, type TestServer } from '../helpers/server.js';
import { buildCli, removeCli, runCli } from './run-cli.js';

let srv: TestServer;
let env: Record<string, string>;
let sdk: AviaryClient;

beforeAll(async () => {
  await buildCli();
  srv = await startServer();
  env = { AVIARY_URL: srv.url, AVIARY_TOKEN: srv.adminToken };
  const a = api(srv);
  await a.post('/api/v1/flags', { key: 'promo', kind: 'boolean' });
  await a.post('/api/v1/flags/promo/environments/production/revive');
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
  await sdk.ready();
}, 60_000);
afterAll(async () => {
  await sdk?.close();
  await srv?.close();
  removeCli();
});

describe('aviary triggers', () => {
  it('create prints the URL once; calling it kills; list shows the firing, not the URL; delete revokes it', async () => {
    const created = await runCli(['triggers', 'create', 'promo', '--env', 'production', '--action', 'kill', '--name', 'grafana-promo'], env);
    expect(created.code, created.stderr).toBe(0);
    const url = created.stdout.split('\n')[0]!;
    expect(url).toMatch(new RegExp(`^${srv.url}/hooks/v1/triggers/[A-Za-z0-9_-]{43}$`));
    expect(created.stdout).toContain('shown only now');

    const fired = await request(srv, 'POST', new URL(url).pathname, { token: null, body: { title: '[FIRING:1] Promo errors' } });
    expect(fired.status).toBe(200);
    await vi.waitFor(() => expect(sdk.variation('promo', { key: 'u' }, true)).toBe(false));

    const table = await runCli(['triggers', 'list', '--flag', 'promo', '--env', 'production'], env);
    expect(table.code, table.stderr).toBe(0);
    const json = JSON.parse((await runCli(['--json', 'triggers', 'list', '--flag', 'promo', '--env', 'production'], env)).stdout);
    expect(json).toMatchObject([{ name: 'grafana-promo', action: 'kill', fired: 1 }]);
    const row = table.stdout.split('\n').find((l) => l.startsWith(json[0].id))!;
    expect(row).toMatch(/grafana-promo\s+kill/);
    expect(table.stdout).not.toContain(url.split('/').pop()!);

    const deleted = await runCli(['triggers', 'delete', json[0].id, '--flag', 'promo', '--env', 'production'], env);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stdout).toContain('deleted the trigger grafana-promo');
    expect((await request(srv, 'POST', new URL(url).pathname, { token: null })).status).toBe(404);
    expect((await runCli(['triggers', 'list', '--flag', 'promo', '--env', 'production'], env)).stdout).toContain(
      'no triggers of promo in production',
    );

    // Bad input: the server's reason, a non-zero exit, nothing created.
    const bad = await runCli(['triggers', 'create', 'promo', '--env', 'production', '--action', 'kill', '--name', '   '], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('/name');
    expect((await api(srv).get('/api/v1/flags/promo/environments/production/triggers')).body.triggers).toEqual([]);
  });
});
