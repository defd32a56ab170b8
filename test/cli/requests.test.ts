/**
 * `aviary requests list|show|approve|reject|apply` against a real server (run as a child process), with a real SDK
 * connected to production: what each command printed (table and --json), and what the server then holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { createApiClient, formatTime, isChangeRequest, type ApiClient, type ChangeRequest } from '@aviary/api-client';
import { api as rawApi, startServer, type TestServer } from '../helpers/server.js';
import { until } from '../stream/fixtures.js';
import { buildCli, removeCli, runCli } from './run-cli.js';

let srv: TestServer;
let sdk: AviaryClient;
let api: ApiClient;
/** The configured admin (author of every request here) and a second admin (the reviewer). */
let author: Record<string, string>;
let reviewer: Record<string, string>;

const ON = { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } } as const;
const lines = (s: string) => s.trimEnd().split('\n');
const path = { key: 'checkout', env: 'production' };

async function hold(body: Record<string, unknown>): Promise<ChangeRequest> {
  const answer = await api.put('/api/v1/flags/{key}/environments/{env}', { params: { path }, body: body as typeof ON });
  if (!isChangeRequest(answer)) throw new Error('production should require approval');
  return answer;
}

beforeAll(async () => {
  await buildCli();
  srv = await startServer();
  api = createApiClient({ baseUrl: srv.url, token: () => srv.adminToken });
  author = { AVIARY_URL: srv.url, AVIARY_TOKEN: srv.adminToken };
  const second = await api.post('/api/v1/tokens', { body: { kind: 'admin', name: 'reviewer' } });
  reviewer = { AVIARY_URL: srv.url, AVIARY_TOKEN: second.token };
  await api.post('/api/v1/flags', { body: { key: 'checkout', kind: 'boolean' } });
  await rawApi(srv).patch('/api/v1/environments/production', { requireApproval: true });
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
  await sdk.ready();
});

afterAll(async () => {
  await sdk?.close();
  await srv?.close();
  removeCli();
});

describe('aviary requests', () => {
  it('list shows pending requests with their change count; show prints the diff; the author cannot approve (exit 3)', async () => {
    const r = await hold({ ...ON, reason: 'launch' });
    const table = await runCli(['requests', 'list', '--env', 'production', '--status', 'pending'], author);
    expect(table.code, table.stderr).toBe(0);
    expect(lines(table.stdout)[0]).toMatch(/^ID\s+STATUS\s+FLAG\s+ENVIRONMENT\s+BASE\s+NOW\s+AUTHOR\s+REVIEWER\s+CREATED\s+CHANGES$/);
    expect(lines(table.stdout)[1]).toMatch(
      new RegExp(`^${r.id}\\s+pending\\s+checkout\\s+production\\s+v1\\s+v1\\s+\\S+\\s+-\\s+${formatTime(r.createdAt)}\\s+1$`),
    );
    expect((await runCli(['requests', 'list', '--env', 'staging'], author)).stdout.trim()).toBe('no change requests');
    const json = await runCli(['--json', 'requests', 'list'], author);
    expect(JSON.parse(json.stdout)).toEqual((await api.get('/api/v1/change-requests')).changeRequests);
    expect((await runCli(['requests', 'list', '--status', 'bogus'], author)).code).toBe(2);

    const shown = await runCli(['requests', 'show', r.id], author);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('changes against the current state:');
    expect(shown.stdout).toContain('~ /enabled: false → true');

    const own = await runCli(['requests', 'approve', r.id], author);
    expect(own.code).toBe(3);
    expect(own.stderr).toMatch(/another actor/);
    expect((await api.get('/api/v1/change-requests/{id}', { params: { path: { id: r.id } } })).status).toBe('pending');
  });

  it('another admin approves; apply writes the state and the SDK serves it', async () => {
    const [r] = (await api.get('/api/v1/change-requests', { params: { query: { status: 'pending' } } })).changeRequests;
    const approved = await runCli(['--json', 'requests', 'approve', r!.id, '--reason', 'reviewed'], reviewer);
    expect(approved.code, approved.stderr).toBe(0);
    expect(JSON.parse(approved.stdout)).toMatchObject({ status: 'approved', reviewer: { name: 'reviewer' }, reviewReason: 'reviewed' });
    const applied = await runCli(['requests', 'apply', r!.id], author);
    expect(applied.code, applied.stderr).toBe(0);
    const now = await api.get('/api/v1/flags/{key}/environments/{env}', { params: { path } });
    expect(now).toMatchObject({ enabled: true, version: 2 });
    expect(applied.stdout.trim()).toMatch(/^applied: checkout in production is now state version 2 \(environment version \d+\)$/);
    await until(() => sdk.variation('checkout', { key: 'u' }, false) === true, 'the SDK serves the applied state');
  });

  it('apply on a moved base exits 1 and prints the diff; reject closes the request', async () => {
    const r = await hold({ ...ON, fallthrough: { variant: 'off' } });
    expect((await runCli(['requests', 'approve', r.id], reviewer)).code).toBe(0);
    await api.post('/api/v1/flags/{key}/environments/{env}/kill', { params: { path, query: {} }, body: {} });
    const moved = await runCli(['requests', 'apply', r.id], author);
    expect(moved.code).toBe(1);
    expect(moved.stderr).toContain('the current state differs from the request at:');
    expect(moved.stderr).toContain('~ /enabled: false → true');
    expect(moved.stderr).toContain('~ /fallthrough/variant: "on" → "off"');
    expect((await api.get('/api/v1/flags/{key}/environments/{env}', { params: { path } })).version).toBe(3);
    const rejected = await runCli(['requests', 'reject', r.id, '-r', 'stale'], author);
    expect(rejected.code, rejected.stderr).toBe(0);
    expect(rejected.stdout).toMatch(/^status:\s+rejected$/m);
    expect(rejected.stdout).toMatch(/^reviewer:\s+\S+ \(stale\)$/m);
    expect((await api.get('/api/v1/change-requests/{id}', { params: { path: { id: r.id } } })).status).toBe('rejected');
    expect((await runCli(['requests', 'show', 'no-such-id'], author)).code).toBe(4);
  });
});
