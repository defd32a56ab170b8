/** `aviary flags history` and `aviary flags revert` against a real server, with a real SDK connected. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { createApiClient, formatTime, type ApiClient } from '@aviary/api-client';
import { startServer, type TestServer } from '../helpers/server.js';
import { buildCli, removeCli, runCli } from './run-cli.js';

let srv: TestServer;
let sdk: AviaryClient;
let env: Record<string, string>;
let api: ApiClient;
const lines = (s: string) => s.trimEnd().split('\n');
const path = { key: 'pricing', env: 'production' };

beforeAll(async () => {
  await buildCli();
  srv = await startServer();
  env = { AVIARY_URL: srv.url, AVIARY_TOKEN: srv.adminToken };
  api = createApiClient({ baseUrl: srv.url, token: () => srv.adminToken });
  await api.post('/api/v1/flags', { body: { key: 'pricing', kind: 'boolean' } });
  await api.put('/api/v1/flags/{key}/environments/{env}', {
    params: { path },
    body: { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' }, reason: 'launch day' },
  });
  await api.post('/api/v1/flags/{key}/environments/{env}/kill', { params: { path }, body: { reason: 'INC-12' } });
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
  await sdk.ready();
});

afterAll(async () => {
  await sdk?.close();
  await srv?.close();
  removeCli();
});

describe('aviary flags history', () => {
  it('prints every version newest first with who, when, what and why; --json is the API page; --limit pages with a cursor', async () => {
    const page = await api.get('/api/v1/flags/{key}/environments/{env}/history', { params: { path } });
    const res = await runCli(['flags', 'history', 'pricing', '--env', 'production'], env);
    expect(res.code, res.stderr).toBe(0);
    const out = lines(res.stdout);
    expect(out[0]).toMatch(/^VERSION\s+AT\s+ACTOR\s+ACTION\s+STATE\s+FALLTHROUGH\s+RULES\s+REASON$/);
    expect(out.slice(1).map((l) => l.split(/\s{2,}/)[0])).toEqual(['3', '2', '1']);
    const actor = page.entries[0]!.actor.name;
    expect(out[1]).toContain(formatTime(page.entries[0]!.at));
    expect(out[1]).toMatch(new RegExp(`^3\\s+.*\\s+${actor}\\s+flag\\.kill\\s+off\\s+on\\s+0\\s+INC-12$`));
    expect(out[2]).toMatch(/^2\s+.*flag-state\.update\s+on\s+on\s+0\s+launch day$/);
    expect(out[3]).toMatch(/^1\s+.*flag\.create\s+off\s+/);

    const json = await runCli(['--json', 'flags', 'history', 'pricing', '--env', 'production'], env);
    expect(JSON.parse(json.stdout)).toEqual(page);

    const first = await runCli(['flags', 'history', 'pricing', '--env', 'production', '--limit', '2'], env);
    const more = lines(first.stdout).at(-1)!;
    expect(more).toMatch(/^older versions: aviary flags history pricing --env production --cursor \S+$/);
    const next = await runCli(['flags', 'history', 'pricing', '--env', 'production', '--cursor', more.split(' ').at(-1)!], env);
    expect(
      lines(next.stdout)
        .slice(1)
        .map((l) => l.split(/\s{2,}/)[0]),
    ).toEqual(['1']);

    expect((await runCli(['flags', 'history', 'nope', '--env', 'production'], env)).code).toBe(4);
    expect((await runCli(['flags', 'history', 'pricing', '--env', 'production', '--limit', '0'], env)).code).toBe(2);
  });
});

describe('aviary flags revert', () => {
  it('writes the old version as a new one, waits until the connected SDK applied it, and the audit log says so', async () => {
    expect(sdk.variation('pricing', { key: 'u' }, true)).toBe(false);
    const res = await runCli(['flags', 'revert', 'pricing', '--env', 'production', '--version', '2', '--reason', 'fixed'], env);
    expect(res.code, res.stderr).toBe(0);
    expect(lines(res.stdout)[0]).toBe(
      'reverted pricing in production to version 2 (now version 4) (reason: fixed): now serving its targeting (fallthrough on)',
    );
    expect(lines(res.stdout)[1]).toMatch(/^delivery: 1\/1 SDKs applied version \d+/);
    // The receipt means the SDK applied it.
    expect(sdk.variation('pricing', { key: 'u' }, false)).toBe(true);
    const audit = await api.get('/api/v1/audit', { params: { query: { flag: 'pricing', action: 'flag-state.revert' } } });
    expect(audit.entries[0]).toMatchObject({ reason: 'fixed', environment: 'production' });
  });

  it('an unknown version is "not found" (exit 4) and changes nothing; a bad --version is a usage error', async () => {
    const before = await api.get('/api/v1/flags/{key}/environments/{env}', { params: { path } });
    const missing = await runCli(['flags', 'revert', 'pricing', '--env', 'production', '--version', '40'], env);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain('no version 40');
    expect((await runCli(['flags', 'revert', 'pricing', '--env', 'production', '--version', 'two'], env)).code).toBe(2);
    expect((await runCli(['flags', 'revert', 'pricing', '--env', 'production'], env)).code).toBe(2);
    expect((await api.get('/api/v1/flags/{key}/environments/{env}', { params: { path } })).version).toBe(before.version);
  });
});
