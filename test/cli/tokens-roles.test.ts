/** `aviary tokens create --role --environments --expires`, `aviary tokens rotate <id> --overlap` (issue 17). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiClient, formatTime, type ApiClient } from '@aviary/api-client';
import { startServer, type TestServer } from '../helpers/server.js';
import { buildCli, removeCli, runCli } from './run-cli.js';

let srv: TestServer;
let env: Record<string, string>;
let api: ApiClient;
const lines = (s: string) => s.trimEnd().split('\n');
const lineOf = (s: string, start: string) => lines(s).find((l) => l.startsWith(start));

beforeAll(async () => {
  await buildCli();
  srv = await startServer();
  env = { AVIARY_URL: srv.url, AVIARY_TOKEN: srv.adminToken };
  api = createApiClient({ baseUrl: srv.url, token: () => srv.adminToken });
});
afterAll(async () => {
  await srv?.close();
  removeCli();
});

describe('aviary tokens with roles', () => {
  it('creates a scoped editor token that expires; the list shows role, environments and expiry', async () => {
    const created = await runCli(
      ['--json', 'tokens', 'create', '-k', 'admin', '-n', 'stager', '--role', 'editor', '--environments', 'staging,development', '--expires', '+2h'],
      env,
    );
    expect(created.code, created.stderr).toBe(0);
    const t = JSON.parse(created.stdout);
    expect(t).toMatchObject({ kind: 'admin', role: 'editor', environments: ['staging', 'development'] });
    expect(Date.parse(t.expiresAt) - Date.now()).toBeGreaterThan(7_100_000);
    const me = await fetch(`${srv.url}/api/v1/me`, { headers: { authorization: `Bearer ${t.token}` } });
    expect(((await me.json()) as { role: string }).role).toBe('editor');
    const listed = await runCli(['tokens', 'list'], env);
    expect(lineOf(listed.stdout, t.id)).toMatch(
      new RegExp(`^${t.id}\\s+admin\\s+editor\\s+staging,development\\s+stager\\s+\\S+\\s+\\S+\\s+\\S+\\s+${formatTime(t.expiresAt)}\\s+-$`),
    );
    // The scoped editor cannot create tokens: refused, saying which role is needed.
    const refused = await runCli(['tokens', 'create', '-k', 'admin', '-n', 'x'], { AVIARY_URL: srv.url, AVIARY_TOKEN: t.token });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('"admin"');
  });

  it('a bad role is a usage error and creates nothing', async () => {
    const before = (await api.get('/api/v1/tokens')).tokens.length;
    const res = await runCli(['tokens', 'create', '-k', 'admin', '-n', 'x', '--role', 'boss'], env);
    expect(res.code).toBe(2);
    const late = await runCli(['tokens', 'create', '-k', 'admin', '-n', 'x', '--expires', 'someday'], env);
    expect(late.code).toBe(2);
    expect(late.stderr).toContain('--expires');
    expect((await api.get('/api/v1/tokens')).tokens.length).toBe(before);
  });

  it('rotates a key: the new secret printed once, the old one working until the overlap ends', async () => {
    const old = await api.post('/api/v1/tokens', { body: { kind: 'sdk', environment: 'production', name: 'svc' } });
    const res = await runCli(['tokens', 'rotate', old.id, '--overlap', '600'], env);
    expect(res.code, res.stderr).toBe(0);
    const stored = await api.get('/api/v1/tokens/{id}', { params: { path: { id: old.id } } });
    expect(stored.replacedBy).not.toBeNull();
    const secret = /^token:\s+(\S+)$/m.exec(res.stdout)![1]!;
    expect(secret).toMatch(/^avi_sdk_/);
    expect(res.stdout).toContain(`works until ${formatTime(stored.expiresAt)}`);
    expect(Date.parse(stored.expiresAt!) - Date.now()).toBeGreaterThan(590_000);
    for (const key of [old.token, secret]) {
      expect((await fetch(`${srv.url}/sdk/v1/flags`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    }
    const again = await runCli(['tokens', 'rotate', old.id], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already rotated');
    expect((await runCli(['tokens', 'rotate', stored.replacedBy!, '--overlap', 'soon'], env)).code).toBe(2);
  });
});
