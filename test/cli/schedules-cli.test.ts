/**
 * `aviary schedules list|create|get|cancel` against a real server, run as a child process; each test checks what the
 * command printed and, through the API, what the server did.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { buildCli, removeCli, runCli } from './run-cli.js';

let srv: TestServer;
let env: Record<string, string>;
let dir: string;
let sdk: AviaryClient;

beforeAll(async () => {
  await buildCli();
  srv = await startServer();
  env = { AVIARY_URL: srv.url, AVIARY_TOKEN: srv.adminToken };
  dir = mkdtempSync(join(tmpdir(), 'aviary-cli-sched-'));
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
  rmSync(dir, { recursive: true, force: true });
});

describe('aviary schedules', () => {
  it('create (relative time), list, get, cancel; a cancelled one is not cancelled twice', async () => {
    const created = await runCli(
      ['--json', 'schedules', 'create', 'promo', '--env', 'production', '--at', '+1h', '--action', 'kill', '--reason', 'promo ends'],
      env,
    );
    expect(created.code, created.stderr).toBe(0);
    const s = JSON.parse(created.stdout);
    expect(s).toMatchObject({ flag: 'promo', environment: 'production', action: 'kill', status: 'pending', reason: 'promo ends' });
    expect(Math.abs(Date.parse(s.at) - (Date.now() + 3_600_000))).toBeLessThan(30_000);

    const table = await runCli(['schedules', 'list', '--flag', 'promo', '--env', 'production'], env);
    expect(table.code).toBe(0);
    const row = table.stdout.split('\n').find((l) => l.startsWith(s.id))!;
    expect(row).toMatch(/kill\s+pending/);
    expect(row).toContain('promo ends');

    const got = await runCli(['schedules', 'get', s.id, '--flag', 'promo', '--env', 'production'], env);
    expect(got.stdout).toMatch(/status:\s+pending/);

    const cancelled = await runCli(['schedules', 'cancel', s.id, '--flag', 'promo', '--env', 'production'], env);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toContain(`cancelled the kill of promo in production`);
    expect((await api(srv).get(`/api/v1/flags/promo/environments/production/schedules/${s.id}`)).body.status).toBe('cancelled');
    const again = await runCli(['schedules', 'cancel', s.id, '--flag', 'promo', '--env', 'production'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/cancelled/);
    const pending = await runCli(['--json', 'schedules', 'list', '--flag', 'promo', '--env', 'production', '--status', 'pending'], env);
    expect(JSON.parse(pending.stdout)).toEqual([]);
  });

  it('a state from a file, due now, runs and the SDK sees it; bad input is refused with the field named', async () => {
    const file = join(dir, 'state.json');
    writeFileSync(
      file,
      JSON.stringify({ enabled: true, offVariant: 'on', targets: [{ variant: 'off', keys: ['u-1'] }], fallthrough: { variant: 'on' } }),
    );
    const created = await runCli(
      ['--json', 'schedules', 'create', 'promo', '-e', 'production', '--at', String(Date.now()), '--action', 'state', '--state-file', file],
      env,
    );
    expect(created.code, created.stderr).toBe(0);
    const id = JSON.parse(created.stdout).id;
    const deadline = Date.now() + 5000;
    while (sdk.variation('promo', { key: 'u-1' }, true) !== false && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(sdk.variation('promo', { key: 'u-1' }, true)).toBe(false);
    expect((await api(srv).get(`/api/v1/flags/promo/environments/production/schedules/${id}`)).body.status).toBe('done');

    writeFileSync(file, JSON.stringify({ enabled: true, offVariant: 'maybe', fallthrough: { variant: 'on' } }));
    const bad = await runCli(['schedules', 'create', 'promo', '-e', 'production', '--at', '+1m', '--action', 'state', '--state-file', file], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('/state/offVariant');
    const noFile = await runCli(['schedules', 'create', 'promo', '-e', 'production', '--at', '+1m', '--action', 'state'], env);
    expect(noFile.code).toBe(2);
    const badTime = await runCli(['schedules', 'create', 'promo', '-e', 'production', '--at', 'next tuesday', '--action', 'kill'], env);
    expect(badTime.code).toBe(1);
    expect(badTime.stderr).toContain('/at');
    const missing = await runCli(['schedules', 'list', '--flag', 'nope', '--env', 'production'], env);
    expect(missing.code).toBe(4);
  });
});
