/**
 * The `aviary` CLI against a real server (127.0.0.1, ephemeral port, temp SQLite), run as a child process, with a
 * real SDK client connected so kills come back with real delivery receipts. Every command of server/cli/main.ts is
 * run here, and each test checks both sides: what the command printed (table and --json), and, through the API,
 * that the server accepted it and did what the command says.
 *
 * Commands: serve; backup; restore; flags list|get|kill|revive; env list|kill-all|revive-all|sdks;
 * canary status|advance|rollback|promote|pause|resume; tokens list|create|revoke (roles and rotate: tokens-roles.test.ts).
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { createApiClient, describeExposure, formatTime, type ApiClient } from '@aviary/api-client';
import { api as rawApi, startServer, type TestServer } from '../helpers/server.js';
import { buildCli, removeCli, runCli } from './run-cli.js';

let srv: TestServer;
let sdk: AviaryClient;
let env: Record<string, string>;
/** The typed client, for reading what the server did (and for setting up). */
let api: ApiClient;

const ON = { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } } as const;
const state = (key: string, environment = 'production') =>
  api.get('/api/v1/flags/{key}/environments/{env}', { params: { path: { key, env: environment } } });
const lines = (s: string) => s.trimEnd().split('\n');
const lineOf = (s: string, start: string) => lines(s).find((l) => l.startsWith(start));

beforeAll(async () => {
  await buildCli();
  srv = await startServer();
  env = { AVIARY_URL: srv.url, AVIARY_TOKEN: srv.adminToken };
  api = createApiClient({ baseUrl: srv.url, token: () => srv.adminToken });
  await api.post('/api/v1/flags', { body: { key: 'new-checkout', kind: 'boolean', description: 'The new checkout flow', tags: ['payments'] } });
  await api.post('/api/v1/flags', { body: { key: 'search.v2', kind: 'boolean' } });
  for (const key of ['new-checkout', 'search.v2'])
    await api.put('/api/v1/flags/{key}/environments/{env}', { params: { path: { key, env: 'production' } }, body: ON });
  // An archived flag: listed only with --archived, never touched by the panic button.
  await api.post('/api/v1/flags', { body: { key: 'old-banner', kind: 'boolean', description: 'Retired banner' } });
  await api.put('/api/v1/flags/{key}/environments/{env}', { params: { path: { key: 'old-banner', env: 'production' } }, body: ON });
  await api.del('/api/v1/flags/{key}', { params: { path: { key: 'old-banner' } } });
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, app: { name: 'cli-test', version: '1.2.3' }, flushIntervalMs: 0 });
  await sdk.ready();
});

afterAll(async () => {
  await sdk?.close();
  await srv?.close();
  removeCli();
});

describe('aviary flags list', () => {
  it('lists live flags with their state in every environment, as a table and as JSON', async () => {
    const table = await runCli(['flags', 'list'], env);
    expect(table.code, table.stderr).toBe(0);
    expect(lines(table.stdout)[0]).toMatch(/^KEY\s+KIND\s+DEVELOPMENT\s+STAGING\s+PRODUCTION\s+DESCRIPTION$/);
    expect(lineOf(table.stdout, 'new-checkout')).toMatch(/^new-checkout\s+boolean\s+off\s+off\s+on\s+The new checkout flow$/);
    expect(lineOf(table.stdout, 'search.v2')).toMatch(/^search\.v2\s+boolean\s+off\s+off\s+on$/);
    expect(table.stdout).not.toContain('old-banner');

    const json = await runCli(['--json', 'flags', 'list', '--search', 'checkout'], env);
    expect(json.code, json.stderr).toBe(0);
    const listed = (await api.get('/api/v1/flags')).flags.filter((f) => f.key === 'new-checkout');
    expect(JSON.parse(json.stdout)).toEqual(listed);
  });

  it('--search matches tags, --env keeps one environment, --archived includes archived flags', async () => {
    const byTag = await runCli(['flags', 'list', '--search', 'PAYMENTS', '--env', 'production'], env);
    expect(byTag.code, byTag.stderr).toBe(0);
    expect(lines(byTag.stdout)[0]).toMatch(/^KEY\s+KIND\s+PRODUCTION\s+DESCRIPTION$/);
    expect(lines(byTag.stdout).slice(1)).toEqual([expect.stringMatching(/^new-checkout\s+boolean\s+on\s+The new checkout flow$/)]);

    const json = await runCli(['--json', 'flags', 'list', '-e', 'staging'], env);
    const flags = JSON.parse(json.stdout) as Array<{ key: string; environments: Record<string, unknown> }>;
    expect(flags.map((f) => f.key).sort()).toEqual(['new-checkout', 'search.v2']);
    for (const f of flags) expect(Object.keys(f.environments)).toEqual(['staging']);

    const archived = await runCli(['flags', 'list', '--archived'], env);
    expect(archived.code, archived.stderr).toBe(0);
    expect(lineOf(archived.stdout, 'old-banner')).toMatch(/^old-banner \(archived\)\s+boolean\s+off\s+off\s+on\s+Retired banner$/);
  });
});

describe('aviary flags get', () => {
  it('says which flags a state requires (prerequisites), per environment', async () => {
    const before = await state('search.v2', 'staging');
    await api.put('/api/v1/flags/{key}/environments/{env}', {
      params: { path: { key: 'search.v2', env: 'staging' } },
      body: { ...ON, prerequisites: [{ flag: 'new-checkout', variants: ['on', 'off'] }] },
    });
    const res = await runCli(['flags', 'get', 'search.v2'], env);
    expect(res.code, res.stderr).toBe(0);
    expect(lines(res.stdout)).toContain('staging: requires new-checkout (on or off)');
    expect(res.stdout).not.toContain('production: requires');
    const { enabled, offVariant, targets, rules, fallthrough } = before;
    await api.put('/api/v1/flags/{key}/environments/{env}', {
      params: { path: { key: 'search.v2', env: 'staging' } },
      body: { enabled, offVariant, targets, rules, fallthrough },
    });
  });

  it("shows variants and each environment's full state, and the same state as JSON", async () => {
    const res = await runCli(['flags', 'get', 'search.v2', '--env', 'production'], env);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/VARIANT\s+VALUE\non\s+true\noff\s+false/);
    const s = await state('search.v2');
    expect(lineOf(res.stdout, 'production')).toMatch(new RegExp(`^production\\s+on\\s+off\\s+0\\s+0\\s+on\\s+${s.version}$`));

    const json = await runCli(['--json', 'flags', 'get', 'new-checkout'], env);
    expect(json.code, json.stderr).toBe(0);
    const body = JSON.parse(json.stdout) as { key: string; tags: string[]; environments: Record<string, unknown> };
    const flag = await api.get('/api/v1/flags/{key}', { params: { path: { key: 'new-checkout' } } });
    expect(body).toEqual({
      ...flag,
      environments: {
        development: await state('new-checkout', 'development'),
        staging: await state('new-checkout', 'staging'),
        production: await state('new-checkout'),
      },
    });
  });
});

describe('aviary flags kill / revive', () => {
  it('kill waits for the delivery receipt of the connected SDK, and the SDK then serves the off variant', async () => {
    expect(sdk.variation('new-checkout', { key: 'user-1' }, false)).toBe(true);
    const res = await runCli(['flags', 'kill', 'new-checkout', '--env', 'production', '--reason', 'INC-42: checkout errors'], env);
    expect(res.code, res.stderr).toBe(0);
    expect(lines(res.stdout)[0]).toBe('killed new-checkout in production (reason: INC-42: checkout errors): now serving "off" to everyone');
    const s = await state('new-checkout');
    expect(s.enabled).toBe(false);
    expect(s.killReason).toBe('INC-42: checkout errors');
    expect(lines(res.stdout)[1]).toMatch(
      new RegExp(
        `^delivery: 1/1 SDKs applied version ${(await api.get('/api/v1/environments/{env}', { params: { path: { env: 'production' } } })).version}`,
      ),
    );
    // The receipt means the SDK applied it: no waiting needed here.
    expect(sdk.variation('new-checkout', { key: 'user-1' }, true)).toBe(false);
    const audit = await api.get('/api/v1/audit', { params: { query: { flag: 'new-checkout', action: 'flag.kill' } } });
    expect(audit.entries[0]!.reason).toBe('INC-42: checkout errors');

    // `flags get` says killed, when and why.
    const get = await runCli(['flags', 'get', 'new-checkout', '-e', 'production'], env);
    expect(lineOf(get.stdout, 'production ')).toMatch(/^production\s+KILLED\s+off/);
    expect(get.stdout).toContain(`production: killed at ${formatTime(s.killedAt)} (reason: INC-42: checkout errors)`);
    const listed = await runCli(['flags', 'list', '-e', 'production'], env);
    expect(lineOf(listed.stdout, 'new-checkout')).toMatch(/^new-checkout\s+boolean\s+KILLED\s/);

    // Idempotent: a second kill changes nothing and says so.
    const again = await runCli(['--json', 'flags', 'kill', 'new-checkout', '-e', 'production'], env);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      flag: 'new-checkout',
      environment: 'production',
      action: 'kill',
      changed: false,
      state: { enabled: false, version: s.version },
    });
    expect((await state('new-checkout')).version).toBe(s.version);
  });

  it('revive serves the targeting again; --json carries the state and the receipt', async () => {
    const revive = await runCli(['--json', 'flags', 'revive', 'new-checkout', '-e', 'production', '-r', 'fixed in 4.2.1'], env);
    expect(revive.code, revive.stderr).toBe(0);
    const body = JSON.parse(revive.stdout);
    const s = await state('new-checkout');
    expect(s).toMatchObject({ enabled: true, killedAt: null });
    expect(body).toMatchObject({ action: 'revive', changed: true, state: { enabled: true, version: s.version } });
    expect(body.receipt).toMatchObject({ connected: 1, applied: 1, pending: [] });
    expect(sdk.variation('new-checkout', { key: 'user-1' }, false)).toBe(true);
    const audit = await api.get('/api/v1/audit', { params: { query: { flag: 'new-checkout', action: 'flag.revive' } } });
    expect(audit.entries[0]!.reason).toBe('fixed in 4.2.1');

    const text = await runCli(['flags', 'revive', 'new-checkout', '-e', 'production'], env);
    expect(text.code, text.stderr).toBe(0);
    expect(lines(text.stdout)[0]).toBe('revived new-checkout in production (no change: it already was): now serving its targeting');
  });
});

describe('aviary env list / sdks', () => {
  it('env list prints every environment with its version, as the API has them', async () => {
    const { environments } = await api.get('/api/v1/environments');
    const table = await runCli(['env', 'list'], env);
    expect(table.code, table.stderr).toBe(0);
    expect(lines(table.stdout)[0]).toMatch(/^KEY\s+NAME\s+VERSION\s+CREATED$/);
    expect(environments.map((e) => e.key)).toEqual(['development', 'staging', 'production']);
    for (const e of environments)
      expect(lineOf(table.stdout, `${e.key} `)).toMatch(new RegExp(`^${e.key}\\s+${e.name}\\s+${e.version}\\s+${formatTime(e.createdAt)}$`));
    const json = await runCli(['--json', 'env', 'list'], env);
    expect(JSON.parse(json.stdout)).toEqual(environments);
  });

  it('env sdks lists the connected SDK with its app and the version it applied', async () => {
    const list = await api.get('/api/v1/environments/{env}/sdks', { params: { path: { env: 'production' } } });
    expect(list.items).toHaveLength(1);
    const s = list.items[0]!;
    expect(s.appliedVersion).toBe(list.version);
    const table = await runCli(['env', 'sdks', 'production'], env);
    expect(table.code, table.stderr).toBe(0);
    expect(lines(table.stdout)[0]).toBe(`1/1 SDKs on the latest version (${list.version}) of production`);
    expect(lineOf(table.stdout, s.id)).toMatch(
      new RegExp(
        `^${s.id}\\s+cli-test 1\\.2\\.3\\s+${s.sdk.name} ${s.sdk.version.replace(/\./g, '\\.')}\\s+${formatTime(s.connectedAt)}\\s+${list.version}\\s+${formatTime(s.appliedAt)}$`,
      ),
    );
    const json = await runCli(['--json', 'env', 'sdks', 'production'], env);
    expect(JSON.parse(json.stdout)).toEqual(list);

    const none = await runCli(['env', 'sdks', 'staging'], env);
    expect(none.code, none.stderr).toBe(0);
    const staging = await api.get('/api/v1/environments/{env}', { params: { path: { env: 'staging' } } });
    expect(none.stdout.trim()).toBe(`no SDKs connected to staging (version ${staging.version})`);
  });
});

describe('aviary env kill-all / revive-all', () => {
  it('refuses without confirmation and changes nothing', async () => {
    const refused = await runCli(['env', 'kill-all', 'production'], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('not confirmed');
    expect((await state('search.v2')).enabled).toBe(true);
    expect((await state('new-checkout')).enabled).toBe(true);
  });

  it("--spare leaves the named flags on (sent as the API's `except`), and revive-all restores the others", async () => {
    const panic = await runCli(['env', 'kill-all', 'production', '--yes', '--spare', 'search.v2', '--reason', 'drill'], env);
    expect(panic.code, panic.stderr).toBe(0);
    expect(lines(panic.stdout).slice(0, 3)).toEqual([
      'panic: killed 1 flag(s) in production: new-checkout',
      'spared: search.v2',
      'restore with `aviary env revive-all production`',
    ]);
    expect(panic.stdout).toMatch(/delivery: 1\/1 SDKs applied version \d+/);
    expect(await state('new-checkout')).toMatchObject({ enabled: false, panicked: true, killReason: 'drill' });
    expect(await state('search.v2')).toMatchObject({ enabled: true, panicked: false });
    expect(sdk.variation('new-checkout', { key: 'u' }, true)).toBe(false);
    expect(sdk.variation('search.v2', { key: 'u' }, false)).toBe(true);
    // The archived flag is not the panic's business.
    expect((await state('old-banner')).enabled).toBe(true);

    const restore = await runCli(['--json', 'env', 'revive-all', 'production', '--reason', 'drill over'], env);
    expect(restore.code, restore.stderr).toBe(0);
    const body = JSON.parse(restore.stdout);
    expect(body.result).toMatchObject({ revived: ['new-checkout'] });
    expect(body.receipt).toMatchObject({ version: body.result.environmentVersion, connected: 1, applied: 1 });
    expect(await state('new-checkout')).toMatchObject({ enabled: true, panicked: false, killedAt: null });
    expect(sdk.variation('new-checkout', { key: 'u' }, false)).toBe(true);
    const audit = await api.get('/api/v1/audit', { params: { query: { action: 'environment.revive-all' } } });
    expect(audit.entries[0]!.reason).toBe('drill over');
  });

  it('--except (repeated or comma-separated) spares flags too; with everything spared nothing is killed', async () => {
    const res = await runCli(['--json', 'env', 'kill-all', 'production', '-y', '--except', 'new-checkout', '--except', 'search.v2'], env);
    expect(res.code, res.stderr).toBe(0);
    const body = JSON.parse(res.stdout);
    expect(body.result.killed).toEqual([]);
    expect([...body.result.spared].sort()).toEqual(['new-checkout', 'search.v2']);
    expect((await state('new-checkout')).enabled).toBe(true);
    expect((await state('search.v2')).enabled).toBe(true);

    const text = await runCli(['env', 'kill-all', 'production', '-y', '--except', 'new-checkout,search.v2'], env);
    expect(lines(text.stdout)[0]).toBe('panic: no enabled flag to kill in production');
    const nothing = await runCli(['env', 'revive-all', 'production'], env);
    expect(nothing.code, nothing.stderr).toBe(0);
    expect(lines(nothing.stdout)[0]).toBe('nothing to restore in production: no flag is held by a panic');
  });

  it('an unknown flag in --except is refused by the server (exit 1, the field named) and nothing is killed', async () => {
    const res = await runCli(['env', 'kill-all', 'production', '--yes', '--except', 'no-such-flag'], env);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/\/except\/0: no flag "no-such-flag"/);
    expect((await state('new-checkout')).enabled).toBe(true);
    expect((await state('search.v2')).enabled).toBe(true);
  });

  it('without exceptions kills every live flag, and revive-all puts each back exactly', async () => {
    const before = { checkout: await state('new-checkout'), search: await state('search.v2') };
    const panic = await runCli(['env', 'kill-all', 'production', '--yes', '--reason', 'INC-8'], env);
    expect(panic.code, panic.stderr).toBe(0);
    expect(lines(panic.stdout)[0]).toMatch(/^panic: killed 2 flag\(s\) in production: (new-checkout, search\.v2|search\.v2, new-checkout)$/);
    expect(panic.stdout).toMatch(/delivery: 1\/1 SDKs applied/);
    expect(sdk.variation('search.v2', { key: 'u' }, true)).toBe(false);
    expect((await state('search.v2')).enabled).toBe(false);

    const restore = await runCli(['env', 'revive-all', 'production'], env);
    expect(restore.code, restore.stderr).toBe(0);
    expect(lines(restore.stdout)[0]).toMatch(/^restored 2 flag\(s\) in production to their state before the panic: /);
    expect(sdk.variation('search.v2', { key: 'u' }, false)).toBe(true);
    const after = { checkout: await state('new-checkout'), search: await state('search.v2') };
    for (const k of ['checkout', 'search'] as const) {
      const { version: _v1, updatedAt: _u1, ...b } = before[k];
      const { version: _v2, updatedAt: _u2, ...a } = after[k];
      expect(a).toEqual(b);
    }
  });
});

describe('aviary tokens', () => {
  it('creates an SDK key (secret shown once) that reads its environment, lists it, and revokes it', async () => {
    const created = await runCli(['--json', 'tokens', 'create', '--kind', 'sdk', '--env', 'staging', '--name', 'ci-key'], env);
    expect(created.code, created.stderr).toBe(0);
    const t = JSON.parse(created.stdout) as { id: string; token: string; kind: string; environment: string; name: string };
    expect(t).toMatchObject({ kind: 'sdk', environment: 'staging', name: 'ci-key' });
    expect(t.token.length).toBeGreaterThan(16);
    const stored = await api.get('/api/v1/tokens/{id}', { params: { path: { id: t.id } } });
    expect(stored).toMatchObject({ kind: 'sdk', environment: 'staging', name: 'ci-key', revokedAt: null });
    const snap = await fetch(`${srv.url}/sdk/v1/flags`, { headers: { authorization: `Bearer ${t.token}` } });
    expect(snap.status).toBe(200);
    expect(((await snap.json()) as { environment: string }).environment).toBe('staging');

    const listed = await runCli(['tokens', 'list'], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect(lines(listed.stdout)[0]).toMatch(/^ID\s+KIND\s+ROLE\s+ENVIRONMENT\s+NAME\s+PREFIX\s+CREATED\s+LAST USED\s+EXPIRES\s+REVOKED$/);
    expect(lineOf(listed.stdout, t.id)).toMatch(
      new RegExp(`^${t.id}\\s+sdk\\s+-\\s+staging\\s+ci-key\\s+${stored.prefix}\\s+${formatTime(stored.createdAt)}\\s+\\S+\\s+-\\s+-$`),
    );
    expect(listed.stdout).not.toContain(t.token);
    const json = await runCli(['--json', 'tokens', 'list'], env);
    expect(JSON.parse(json.stdout)).toEqual((await api.get('/api/v1/tokens')).tokens);

    const revoked = await runCli(['tokens', 'revoke', t.id, '--reason', 'rotated'], env);
    expect(revoked.code, revoked.stderr).toBe(0);
    const after = await api.get('/api/v1/tokens/{id}', { params: { path: { id: t.id } } });
    expect(after.revokedAt).not.toBeNull();
    expect(revoked.stdout.trim()).toBe(`revoked sdk token ${t.id} (ci-key) at ${formatTime(after.revokedAt)}`);
    const denied = await fetch(`${srv.url}/sdk/v1/flags`, { headers: { authorization: `Bearer ${t.token}` } });
    expect(denied.status).toBe(401);
    const relisted = await runCli(['tokens', 'list'], env);
    expect(lineOf(relisted.stdout, t.id)).toMatch(new RegExp(`\\s${formatTime(after.revokedAt)}$`));
  });

  it('creates an admin token the CLI can then use; revoking it (--json) locks it out', async () => {
    const created = await runCli(['--json', 'tokens', 'create', '-k', 'admin', '-n', 'ops-bot'], env);
    expect(created.code, created.stderr).toBe(0);
    const t = JSON.parse(created.stdout) as { id: string; token: string; environment: string | null };
    expect(t.environment).toBeNull();
    const asBot = { AVIARY_URL: srv.url, AVIARY_TOKEN: t.token };
    expect((await runCli(['env', 'list'], asBot)).code).toBe(0);

    const revoked = await runCli(['--json', 'tokens', 'revoke', t.id], env);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(JSON.parse(revoked.stdout)).toEqual(await api.get('/api/v1/tokens/{id}', { params: { path: { id: t.id } } }));
    expect((await runCli(['env', 'list'], asBot)).code).toBe(3);
  });

  it('an sdk key without --env is a usage error, and nothing is created', async () => {
    const before = (await api.get('/api/v1/tokens')).tokens.length;
    const res = await runCli(['tokens', 'create', '--kind', 'sdk', '--name', 'no-env'], env);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('pass --env');
    expect((await api.get('/api/v1/tokens')).tokens.length).toBe(before);
  });
});

describe('exit codes on failure', () => {
  it('3 for a rejected token, 3 for no token, 4 for an unknown flag, canary or environment, 2 for usage, 1 for a rejected body', async () => {
    const [badToken, noToken, unknownFlag, unknownGet, noCanary, unknownEnv, unknownPanicEnv, usage, unknownCmd, badWait, badBody] =
      await Promise.all([
        runCli(['flags', 'list'], { ...env, AVIARY_TOKEN: 'not-a-real-token-at-all' }),
        runCli(['flags', 'list'], { AVIARY_URL: srv.url }),
        runCli(['flags', 'kill', 'no-such-flag', '-e', 'production', '-r', 'x'], env),
        runCli(['flags', 'get', 'no-such-flag'], env),
        runCli(['canary', 'status', 'search.v2', '-e', 'production'], env),
        runCli(['flags', 'list', '-e', 'prod'], env),
        runCli(['env', 'kill-all', 'prod', '--yes'], env),
        runCli(['flags', 'kill', 'search.v2'], env),
        runCli(['flags', 'explode'], env),
        runCli(['flags', 'kill', 'search.v2', '-e', 'production', '--wait', 'soon'], env),
        runCli(['tokens', 'create', '--kind', 'sdk', '--env', 'no-such-env', '--name', 'x'], env),
      ]);
    expect(badToken.code).toBe(3);
    expect(badToken.stderr).toMatch(/^error: /);
    expect(noToken.code).toBe(3);
    expect(noToken.stderr).toContain('AVIARY_TOKEN');
    expect(unknownFlag.code).toBe(4);
    expect(unknownFlag.stderr).toContain('no-such-flag');
    expect(unknownGet.code).toBe(4);
    expect(noCanary.code).toBe(4);
    expect(unknownEnv.code).toBe(4);
    expect(unknownEnv.stderr).toContain('prod');
    expect(unknownPanicEnv.code).toBe(4);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("required option '-e, --env <environment>'");
    expect(unknownCmd.code).toBe(2);
    expect(badWait.code).toBe(2);
    expect(badWait.stderr).toContain('--wait must be a number of seconds');
    expect([1, 4]).toContain(badBody.code);
    // Nothing changed on the failed paths.
    expect((await state('search.v2')).enabled).toBe(true);
    expect((await api.get('/api/v1/tokens')).tokens.some((t) => t.name === 'x')).toBe(false);
  });

  it('5 when nothing answers at the URL', async () => {
    // A port that was free a moment ago: bind, note it, close.
    const port = await freePort();
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

function freePort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

describe('aviary serve', () => {
  it('starts the server like npm start (migrations, environments, the configured admin token) and stops on SIGTERM', async () => {
    const { spawn } = await import('node:child_process');
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const port = await freePort();
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
  const canary = () => api.get('/api/v1/flags/{key}/environments/{env}/canary', { params: { path: { key: 'search.v2', env: 'production' } } });

  it('shows a running canary and steers it: advance, pause, resume, roll back, promote', async () => {
    await api.put('/api/v1/flags/{key}/environments/{env}/canary', {
      params: { path: { key: 'search.v2', env: 'production' } },
      body: { control: 'off', canary: 'on', stages: [{ percent: 10 }, { percent: 50 }, { percent: 100 }], stageDurationSeconds: 3600 },
    });

    const status = await runCli(['canary', 'status', 'search.v2', '-e', 'production'], env);
    expect(status.code, status.stderr).toBe(0);
    const c = await canary();
    expect(status.stdout).toMatch(/canary:\s+search\.v2 in production: on against off/);
    expect(status.stdout).toMatch(/state:\s+running/);
    expect(status.stdout).toMatch(/stage:\s+1 of 3 \(10% of traffic\)/);
    expect(status.stdout).toMatch(/timeline:\s+>10%< → 50% → 100%/);
    expect(lineOf(status.stdout, 'exposure:')).toBe(`exposure:  ${describeExposure(c)}`);
    expect(status.stdout).toContain(`started:   ${formatTime(c.startedAt)}`);
    expect(c.comparison).not.toBeNull();
    expect(status.stdout).toMatch(new RegExp(`decision:\\s+${c.comparison!.decision} \\(at `));
    expect(lineOf(status.stdout, 'control ')).toMatch(/^control\s+off\s+\d+\s+\d+\s/);
    expect(lineOf(status.stdout, 'canary ')).toMatch(/^canary\s+on\s+\d+\s+\d+\s/);
    const statusJson = await runCli(['--json', 'canary', 'status', 'search.v2', '-e', 'production'], env);
    expect(JSON.parse(statusJson.stdout)).toMatchObject({
      control: 'off',
      canary: 'on',
      state: 'running',
      stage: 0,
      percent: 10,
      startedAt: c.startedAt,
    });

    const advance = await runCli(['--json', 'canary', 'advance', 'search.v2', '-e', 'production', '-r', 'looks good'], env);
    expect(advance.code, advance.stderr).toBe(0);
    expect(JSON.parse(advance.stdout)).toMatchObject({ state: 'running', stage: 1, percent: 50 });
    expect(await canary()).toMatchObject({ state: 'running', stage: 1, percent: 50 });

    const pause = await runCli(['canary', 'pause', 'search.v2', '-e', 'production', '-r', 'weekend'], env);
    expect(pause.code, pause.stderr).toBe(0);
    expect(pause.stdout).toMatch(/state:\s+paused/);
    expect((await canary()).state).toBe('paused');
    const audit = await api.get('/api/v1/audit', { params: { query: { action: 'canary.pause' } } });
    expect(audit.entries[0]).toMatchObject({ resourceKey: 'search.v2', environment: 'production', reason: 'paused by hand: weekend' });

    const resume = await runCli(['--json', 'canary', 'resume', 'search.v2', '-e', 'production'], env);
    expect(resume.code, resume.stderr).toBe(0);
    expect(JSON.parse(resume.stdout)).toMatchObject({ state: 'running', stage: 1 });
    expect((await canary()).state).toBe('running');

    const rollback = await runCli(['canary', 'rollback', 'search.v2', '-e', 'production', '-r', 'errors up'], env);
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(rollback.stdout).toMatch(/state:\s+rolled_back/);
    expect((await canary()).state).toBe('rolled_back');
    await expect.poll(() => sdk.variation('search.v2', { key: 'anyone' }, true)).toBe(false);

    // Pausing a canary that is over is refused (409: exit 1), and changes nothing.
    const late = await runCli(['canary', 'pause', 'search.v2', '-e', 'production'], env);
    expect(late.code).toBe(1);
    expect((await canary()).state).toBe('rolled_back');

    // Start it again and promote it: everyone gets the canary variant.
    await api.put('/api/v1/flags/{key}/environments/{env}/canary', {
      params: { path: { key: 'search.v2', env: 'production' } },
      body: { control: 'off', canary: 'on', stages: [{ percent: 10 }] },
    });
    const promote = await runCli(['--json', 'canary', 'promote', 'search.v2', '-e', 'production'], env);
    expect(promote.code, promote.stderr).toBe(0);
    expect(JSON.parse(promote.stdout).state).toBe('promoted');
    expect((await canary()).state).toBe('promoted');
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
      const ids = async () => (await api.get('/api/v1/environments/{env}/sdks', { params: { path: { env: 'production' } } })).items.map((s) => s.id);
      await expect.poll(ids).toContain('wedged-sdk');
      const res = await runCli(['flags', 'kill', 'search.v2', '-e', 'production', '-r', 'drill', '--wait', '1'], env);
      expect(res.code, res.stderr).toBe(6);
      expect(res.stdout).toMatch(/delivery: 1\/2 SDKs applied version \d+/);
      expect(res.stdout).toContain('not yet applied by: wedged-sdk');
      // The kill itself happened, and the healthy SDK applied it.
      expect((await state('search.v2')).enabled).toBe(false);
      expect(sdk.variation('search.v2', { key: 'u' }, true)).toBe(false);
    } finally {
      ws.close();
      await rawApi(srv).post('/api/v1/flags/search.v2/environments/production/revive', {});
    }
  });
});

describe('aviary prints what SDKs send safely', () => {
  it('escapes terminal control characters an SDK put in its app name (an SDK key is public)', async () => {
    const hostile = createClient({
      baseUrl: srv.url,
      sdkKey: srv.sdkKeys.staging,
      app: { name: 'evil\u001b]0;pwned\u0007\u001b[2J', version: '1\u202e2' },
      flushIntervalMs: 0,
    });
    try {
      await hostile.ready();
      const table = await runCli(['env', 'sdks', 'staging'], env);
      expect(table.code, table.stderr).toBe(0);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for exactly these
      expect(table.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
      expect(table.stdout).toContain('evil\\u001b]0;pwned\\u0007\\u001b[2J');
      expect(table.stdout).toContain('1\\u202e2');
      // --json stays valid JSON with the exact text.
      const json = await runCli(['--json', 'env', 'sdks', 'staging'], env);
      expect(JSON.parse(json.stdout).items[0].app.name).toBe('evil\u001b]0;pwned\u0007\u001b[2J');
    } finally {
      await hostile.close();
    }
  });
});

describe('aviary backup / restore', () => {
  it('backs up the running server’s database, refuses to restore under it, and restores once it stopped', async () => {
    const { join } = await import('node:path');
    const { existsSync } = await import('node:fs');
    const other = await startServer();
    const cli = { AVIARY_DB: other.dbPath };
    const file = join(other.dir, 'backup.db');
    try {
      const backup = await runCli(['backup', file], cli);
      expect(backup.code, backup.stderr).toBe(0);
      expect(backup.stdout).toMatch(
        new RegExp(`^backed up ${other.dbPath} to ${file} \\(\\d+ bytes; versions development \\d+, production \\d+, staging \\d+\\)`),
      );
      expect(existsSync(file)).toBe(true);
      const again = await runCli(['backup', file], cli);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('already exists');

      const refused = await runCli(['restore', file, '--yes'], cli);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`the database ${other.dbPath} is in use by process ${process.pid}`);
      const unconfirmed = await runCli(['restore', file], cli);
      expect(unconfirmed.code).toBe(2);
    } finally {
      await other.close({ keepData: true });
    }
    try {
      const restored = await runCli(['--json', 'restore', file, '--yes'], cli);
      expect(restored.code, restored.stderr).toBe(0);
      expect(JSON.parse(restored.stdout)).toMatchObject({ file: other.dbPath, environments: { production: expect.any(Number) } });
    } finally {
      const { rmSync } = await import('node:fs');
      rmSync(other.dir, { recursive: true, force: true });
    }
  });
});
