/**
 * The `aviary` CLI against a real server (127.0.0.1, ephemeral port, temp SQLite), run as a child process, with a
 * real SDK client connected so kills come back with real delivery receipts.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { buildCli, removeCli, runCli } from './run-cli.js';

let srv: TestServer;
let sdk: AviaryClient;
let env: Record<string, string>;

beforeAll(async () => {
  await buildCli();
  srv = await startServer();
  env = { AVIARY_URL: srv.url, AVIARY_TOKEN: srv.adminToken };
  const a = api(srv);
  expect((await a.post('/api/v1/flags', { key: 'new-checkout', kind: 'boolean', description: 'The new checkout flow', tags: ['payments'] })).status).toBe(201);
  expect((await a.post('/api/v1/flags', { key: 'search.v2', kind: 'boolean' })).status).toBe(201);
  for (const key of ['new-checkout', 'search.v2']) {
    const put = await a.put(`/api/v1/flags/${key}/environments/production`, {
      enabled: true,
      offVariant: 'off',
      targets: [],
      rules: [],
      fallthrough: { variant: 'on' },
    });
    expect(put.status).toBe(200);
  }
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, app: { name: 'cli-test' }, flushIntervalMs: 0 });
  await sdk.ready();
});

afterAll(async () => {
  await sdk?.close();
  await srv?.close();
  removeCli();
});

describe('aviary flags', () => {
  it('lists flags with their state in every environment, as a table and as JSON', async () => {
    const table = await runCli(['flags', 'list'], env);
    expect(table.code, table.stderr).toBe(0);
    const line = table.stdout.split('\n').find((l) => l.startsWith('new-checkout'));
    expect(line).toMatch(/new-checkout\s+boolean\s+off\s+off\s+on\s+The new checkout flow/);
    expect(table.stdout.split('\n')[0]).toMatch(/^KEY\s+KIND\s+DEVELOPMENT\s+STAGING\s+PRODUCTION\s+DESCRIPTION$/);

    const json = await runCli(['--json', 'flags', 'list', '--search', 'checkout'], env);
    expect(json.code, json.stderr).toBe(0);
    const parsed = JSON.parse(json.stdout) as Array<{ key: string; environments: Record<string, { enabled: boolean }> }>;
    expect(parsed.map((f) => f.key)).toEqual(['new-checkout']);
    expect(parsed[0]!.environments.production!.enabled).toBe(true);
  });

  it('kill waits for the delivery receipt of the connected SDK, and the SDK then serves the off variant', async () => {
    expect(sdk.variation('new-checkout', { key: 'user-1' }, false)).toBe(true);
    const res = await runCli(['flags', 'kill', 'new-checkout', '--env', 'production', '--reason', 'INC-42: checkout errors'], env);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('killed new-checkout in production (reason: INC-42: checkout errors)');
    expect(res.stdout).toMatch(/delivery: 1\/1 SDKs applied version \d+/);
    // The receipt means the SDK applied it: no waiting needed here.
    expect(sdk.variation('new-checkout', { key: 'user-1' }, true)).toBe(false);
    const state = await api(srv).get('/api/v1/flags/new-checkout/environments/production');
    expect(state.body.enabled).toBe(false);
    const audit = await api(srv).get('/api/v1/audit?flag=new-checkout&action=flag.kill');
    expect(audit.body.entries[0].reason).toBe('INC-42: checkout errors');

    const revive = await runCli(['--json', 'flags', 'revive', 'new-checkout', '-e', 'production'], env);
    expect(revive.code, revive.stderr).toBe(0);
    const body = JSON.parse(revive.stdout);
    expect(body.state.enabled).toBe(true);
    expect(body.receipt).toMatchObject({ connected: 1, applied: 1 });
    expect(sdk.variation('new-checkout', { key: 'user-1' }, false)).toBe(true);
  });

  it('get shows variants and the full state per environment', async () => {
    const res = await runCli(['flags', 'get', 'search.v2', '--env', 'production'], env);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/VARIANT\s+VALUE\non\s+true\noff\s+false/);
    expect(res.stdout).toMatch(/production\s+on\s+off\s+0\s+0\s+on\s+\d+/);
  });
});

describe('aviary env kill-all / revive-all', () => {
  it('refuses without confirmation, then panics and restores every flag exactly', async () => {
    const refused = await runCli(['env', 'kill-all', 'production'], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('not confirmed');
    expect((await api(srv).get('/api/v1/flags/search.v2/environments/production')).body.enabled).toBe(true);

    const panic = await runCli(['env', 'kill-all', 'production', '--yes', '--reason', 'drill'], env);
    expect(panic.code, panic.stderr).toBe(0);
    expect(panic.stdout).toMatch(/panic: killed 2 flag\(s\) in production/);
    expect(panic.stdout).toMatch(/delivery: 1\/1 SDKs applied/);
    expect(sdk.variation('search.v2', { key: 'u' }, true)).toBe(false);

    const restore = await runCli(['env', 'revive-all', 'production'], env);
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.stdout).toMatch(/restored 2 flag\(s\) in production/);
    expect(sdk.variation('search.v2', { key: 'u' }, false)).toBe(true);
  });
});

describe('aviary tokens', () => {
  it('creates an SDK key (secret shown once) and revokes it', async () => {
    const created = await runCli(['--json', 'tokens', 'create', '--kind', 'sdk', '--env', 'staging', '--name', 'ci-key'], env);
    expect(created.code, created.stderr).toBe(0);
    const t = JSON.parse(created.stdout) as { id: string; token: string };
    expect(t.token.length).toBeGreaterThan(16);
    const snap = await fetch(`${srv.url}/sdk/v1/flags`, { headers: { authorization: `Bearer ${t.token}` } });
    expect(snap.status).toBe(200);

    const revoked = await runCli(['tokens', 'revoke', t.id], env);
    expect(revoked.code, revoked.stderr).toBe(0);
    const after = await fetch(`${srv.url}/sdk/v1/flags`, { headers: { authorization: `Bearer ${t.token}` } });
    expect(after.status).toBe(401);
  });
});

describe('exit codes on failure', () => {
  it('3 for a rejected token, 3 for no token, 4 for an unknown flag or canary, 2 for usage, 1 for a rejected body', async () => {
    const [badToken, noToken, unknownFlag, noCanary, usage, unknownCmd, badBody] = await Promise.all([
      runCli(['flags', 'list'], { ...env, AVIARY_TOKEN: 'not-a-real-token-at-all' }),
      runCli(['flags', 'list'], { AVIARY_URL: srv.url }),
      runCli(['flags', 'kill', 'no-such-flag', '-e', 'production', '-r', 'x'], env),
      runCli(['canary', 'status', 'search.v2', '-e', 'production'], env),
      runCli(['flags', 'kill', 'search.v2'], env),
      runCli(['flags', 'explode'], env),
      runCli(['tokens', 'create', '--kind', 'sdk', '--env', 'no-such-env', '--name', 'x'], env),
    ]);
    expect(badToken.code).toBe(3);
    expect(badToken.stderr).toMatch(/^error: /);
    expect(noToken.code).toBe(3);
    expect(noToken.stderr).toContain('AVIARY_TOKEN');
    expect(unknownFlag.code).toBe(4);
    expect(unknownFlag.stderr).toMatch(/no-such-flag|not found/i);
    expect(noCanary.code).toBe(4);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("required option '-e, --env <environment>'");
    expect(unknownCmd.code).toBe(2);
    expect([1, 4]).toContain(badBody.code);
    // Nothing changed on the failed paths.
    expect((await api(srv).get('/api/v1/flags/search.v2/environments/production')).body.enabled).toBe(true);
  });

  it('5 when nothing answers at the URL', async () => {
    // A port that was free a moment ago: bind, note it, close.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const res = await runCli(['flags', 'list'], { AVIARY_URL: `http://127.0.0.1:${port}`, AVIARY_TOKEN: 'whatever-token-123' });
    expect(res.code).toBe(5);
    expect(res.stderr).toContain(`cannot reach http://127.0.0.1:${port}`);
  });

  it('--help lists the exit codes and exits 0', async () => {
    const res = await runCli(['--help'], {});
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('5  server unreachable');
  });
});

describe('aviary serve', () => {
  it('starts the server like npm start (migrations, environments, the configured admin token) and stops on SIGTERM', async () => {
    const { spawn } = await import('node:child_process');
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const dir = mkdtempSync(join(tmpdir(), 'aviary-serve-'));
    const token = 'serve-test-admin-token-0123456789';
    // Through the bin shim, as `npx aviary serve` runs it.
    const bin = new URL('../../server/cli/aviary.mjs', import.meta.url).pathname;
    const child = spawn(process.execPath, [bin, 'serve', '--port', String(port), '--db', join(dir, 'aviary.db')], {
      env: { PATH: process.env.PATH ?? '', AVIARY_ADMIN_TOKEN: token, AVIARY_LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = `http://127.0.0.1:${port}`;
      await expect.poll(async () => (await fetch(`${url}/readyz`).catch(() => null))?.status ?? 0, { timeout: 20_000, interval: 200 }).toBe(200);
      const list = await runCli(['env', 'list'], { AVIARY_URL: url, AVIARY_TOKEN: token });
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout).toMatch(/development[\s\S]*staging[\s\S]*production/);
    } finally {
      child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000))]);
      if (code === 'timeout') child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      expect(code).toBe(0);
    }
  }, 40_000);
});

describe('aviary canary', () => {
  it('shows a running canary and steers it: advance, roll back, promote', async () => {
    const a = api(srv);
    const put = await a.put('/api/v1/flags/search.v2/environments/production/canary', {
      control: 'off',
      canary: 'on',
      stages: [{ percent: 10 }, { percent: 50 }, { percent: 100 }],
      stageDurationSeconds: 3600,
    });
    expect(put.status, JSON.stringify(put.body)).toBeLessThan(300);

    const status = await runCli(['canary', 'status', 'search.v2', '-e', 'production'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/canary:\s+search\.v2 in production: on against off/);
    expect(status.stdout).toMatch(/state:\s+running/);
    expect(status.stdout).toMatch(/timeline:\s+>10%< → 50% → 100%/);

    const advance = await runCli(['--json', 'canary', 'advance', 'search.v2', '-e', 'production', '-r', 'looks good'], env);
    expect(advance.code, advance.stderr).toBe(0);
    expect(JSON.parse(advance.stdout)).toMatchObject({ state: 'running', stage: 1, percent: 50 });

    const rollback = await runCli(['canary', 'rollback', 'search.v2', '-e', 'production', '-r', 'errors up'], env);
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(rollback.stdout).toMatch(/state:\s+rolled_back/);
    expect((await a.get('/api/v1/flags/search.v2/environments/production/canary')).body.state).toBe('rolled_back');

    // Start it again and promote it: everyone gets the canary variant.
    expect((await a.put('/api/v1/flags/search.v2/environments/production/canary', { control: 'off', canary: 'on', stages: [{ percent: 10 }] })).status).toBeLessThan(300);
    const promote = await runCli(['--json', 'canary', 'promote', 'search.v2', '-e', 'production'], env);
    expect(promote.code, promote.stderr).toBe(0);
    expect(JSON.parse(promote.stdout).state).toBe('promoted');
    await expect.poll(() => sdk.variation('search.v2', { key: 'anyone' }, false)).toBe(true);
  });
});

describe('aviary flags kill with an SDK that does not confirm', () => {
  it('exits 6 after --wait and names the SDK that has not applied the kill', async () => {
    const { default: WebSocket } = await import('ws');
    // A real stream connection that says hello and then never acknowledges anything (a wedged client).
    const ws = new WebSocket(`${srv.url.replace('http', 'ws')}/sdk/v1/stream`, { headers: { authorization: `Bearer ${srv.sdkKeys.production}` } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ type: 'hello', sdkId: 'wedged-sdk', sdkVersion: '0.0.1', app: { name: 'legacy-batch' } }));
    try {
      await expect.poll(async () => ((await api(srv).get('/api/v1/environments/production/sdks')).body.items as Array<{ id: string }>).map((s) => s.id)).toContain('wedged-sdk');
      const res = await runCli(['flags', 'kill', 'search.v2', '-e', 'production', '-r', 'drill', '--wait', '1'], env);
      expect(res.code, res.stderr).toBe(6);
      expect(res.stdout).toMatch(/delivery: 1\/2 SDKs applied version \d+/);
      expect(res.stdout).toContain('not yet applied by: wedged-sdk');
      // The kill itself happened, and the healthy SDK applied it.
      expect((await api(srv).get('/api/v1/flags/search.v2/environments/production')).body.enabled).toBe(false);
      expect(sdk.variation('search.v2', { key: 'u' }, true)).toBe(false);
    } finally {
      ws.close();
      await api(srv).post('/api/v1/flags/search.v2/environments/production/revive', {});
    }
  });
});
