/**
 * `aviary migrate-store`: a SQLite installation written by a real server (environments, flags, an archived flag, a
 * kill, a segment, a canary, tokens, metrics, stream history), stopped, then moved by the CLI into the run's real
 * PostgreSQL and served from there by a real server: everything reads back the same through the HTTP API, the old
 * tokens work, an SDK resumes from the copied change log, and writes continue with the next version and audit id.
 * Refusals (a non-empty target, a file held by a running server, a file not stopped cleanly or from an older Aviary)
 * and a failure half-way change nothing on the target.
 *
 * The CLI runs through its bin shim (as `npx aviary` runs it in a checkout), not the esbuild bundle of run-cli.ts:
 * the bundle resolves the PostgreSQL migrations folder from its own location (postgres-port.ts uses import.meta.url),
 * where there is none.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { openPostgres } from '../../server/storage/postgres-port.js';
import { createEmptyTestDatabase, createTestDatabase, withAdmin, type TestDatabase } from '../helpers/postgres.js';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { booleanFlag, kill, RawStream, revive } from '../stream/fixtures.js';
import type { CliResult } from './run-cli.js';

const BIN = fileURLToPath(new URL('../../server/cli/aviary.mjs', import.meta.url));

/** Runs `aviary <args>` with only PATH and HOME from the caller's environment. */
function aviary(args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`aviary ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const ok = <T extends { status: number; body: unknown }>(res: T, what: string): T => {
  if (res.status >= 300) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res;
};

/** Every row of every table of the target, hashed per table, plus the audit identity: "did anything change?". */
async function fingerprint(url: string): Promise<Record<string, string>> {
  return withAdmin(url, async (sql) => {
    const out: Record<string, string> = {};
    const tables = await sql<Array<{ t: string }>>`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`;
    for (const { t } of tables) {
      const [r] = await sql.unsafe(`SELECT count(*)::int AS n, coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') AS h FROM "${t}" x`);
      out[t] = `${r!.n} ${r!.h}`;
    }
    const [identity] = await sql<Array<{ seq: string }>>`SELECT pg_get_serial_sequence('audit_log', 'id') AS seq`;
    const [s] = await sql.unsafe(`SELECT last_value::text || ' ' || is_called::text AS v FROM ${identity!.seq}`);
    out['audit_log identity'] = String(s!.v);
    return out;
  });
}

/** Whether a fingerprint shows no row in any table (and an unused audit identity). */
const empty = (f: Record<string, string>) =>
  Object.entries(f).every(([k, v]) => (k === 'audit_log identity' ? v === '1 false' : v.startsWith('0 '))) && Object.keys(f).length > 15;

/** Row counts of the SQLite file per Aviary table (read-only). */
function sqliteCounts(file: string): Record<string, number> {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const tables = db
      .prepare<[], { name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__drizzle%'",
      )
      .all();
    return Object.fromEntries(tables.map(({ name }) => [name, (db.prepare(`SELECT count(*) AS n FROM "${name}"`).get() as { n: number }).n]));
  } finally {
    db.close();
  }
}

/** A copy of the SQLite file at `file` (online backup API), changed by `edit`. */
async function editedCopy(file: string, name: string, edit: (db: Database.Database) => void): Promise<string> {
  const copy = join(workDir, name);
  const source = new Database(file, { readonly: true });
  await source.backup(copy);
  source.close();
  const db = new Database(copy);
  db.pragma('foreign_keys = OFF');
  edit(db);
  db.close();
  return copy;
}

interface Running {
  url: string;
  adminToken: string;
  app: FastifyInstance;
}

async function serveFromPostgres(url: string, source: TestServer): Promise<Running> {
  // Configured as the SQLite server was (same AVIARY_ADMIN_TOKEN and AVIARY_SDK_KEY_*), as a deployment would be.
  const app = await buildApp({ store: await openPostgres(url), adminToken: source.adminToken, sdkKeys: source.sdkKeys });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no TCP address');
  return { url: `http://127.0.0.1:${address.port}`, adminToken: source.adminToken, app };
}

/** Waits until the checkout flag's `off` variant has at least `n` evaluations counted (metrics are ingested in batches). */
async function countedEvaluations(srv: Pick<TestServer, 'url' | 'adminToken'>, n: number): Promise<void> {
  for (const end = Date.now() + 10_000; ((await api(srv).get(metricsPath)).body.totals?.off?.evaluations ?? 0) < n; ) {
    if (Date.now() > end) throw new Error(`fewer than ${n} evaluations counted`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What the admin API shows of an installation (stable fields: nothing computed from the current time). */
async function view(srv: Pick<TestServer, 'url' | 'adminToken'>) {
  const a = api(srv);
  const environments = ok(await a.get('/api/v1/environments'), 'environments').body.environments;
  const flags = ok(await a.get('/api/v1/flags?archived=all'), 'flags').body.flags;
  const states: Record<string, unknown> = {};
  for (const f of flags) {
    for (const e of environments) states[`${f.key}/${e.key}`] = ok(await a.get(`/api/v1/flags/${f.key}/environments/${e.key}`), 'state').body;
  }
  const audit: Array<{ id: number }> = [];
  for (let cursor: string | null = ''; cursor !== null; ) {
    const page: { entries: Array<{ id: number }>; nextCursor: string | null } = ok(
      await a.get(`/api/v1/audit?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`),
      'audit',
    ).body;
    audit.push(...page.entries);
    cursor = page.nextCursor;
  }
  const {
    holdRemainingSeconds: _hold,
    heldSeconds: _held,
    comparison: _cmp,
    ...canary
  } = ok(await a.get('/api/v1/flags/search/environments/production/canary'), 'canary').body;
  return {
    environments,
    flags,
    states,
    segments: ok(await a.get('/api/v1/segments'), 'segments').body,
    audit,
    tokens: ok(await a.get('/api/v1/tokens'), 'tokens').body,
    canary,
    metrics: ok(await a.get(metricsPath), 'metrics').body,
  };
}

let workDir: string;
let source: TestServer;
let target: TestDatabase;
let before: Awaited<ReturnType<typeof view>>;
/** Tokens created through the API (so they exist on PostgreSQL only if they were copied). */
let opsToken: string;
let backendKey: string;
let mobileKey: string;
/** The stream version an SDK had applied before the move, and the production version at the stop. */
let sdkVersion: number;
let productionVersion: number;
let metricsReport: Record<string, unknown>;
/** What an SDK on production read before the move. */
let sdkSnapshot: { version: number; flags: Array<{ key: string }> };
const minute = Math.floor(Date.now() / 60_000) * 60_000;
const metricsPath = `/api/v1/flags/checkout/environments/production/metrics?from=${minute - 60_000}&to=${minute + 120_000}`;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'aviary-migrate-'));
  target = await createEmptyTestDatabase(); // not even migrated: migrate-store migrates it
  cleanups.push(() => target.drop());
  source = await startServer({ dbPath: join(workDir, 'aviary.db') });
  const a = api(source);
  ok(await a.post('/api/v1/environments', { key: 'qa', name: 'QA' }), 'environment');
  ok(await a.post('/api/v1/segments', { key: 'beta', description: 'Beta testers', included: ['u1', 'ü2'], excluded: ['u3'], rules: [] }), 'segment');
  await booleanFlag(source, 'checkout');
  await booleanFlag(source, 'search');
  ok(
    await a.post('/api/v1/flags', {
      key: 'banner',
      kind: 'string',
      description: 'Top banner',
      tags: ['web'],
      variants: [
        { key: 'a', value: 'hello' },
        { key: 'b', value: 'Grüße ✓' },
      ],
    }),
    'banner',
  );
  ok(await a.post('/api/v1/flags', { key: 'retired', kind: 'boolean' }), 'retired');
  ok(await a.delete('/api/v1/flags/retired'), 'archive'); // archived: a boolean column
  await kill(source, 'checkout', 'production');
  ok(await a.post('/api/v1/flags/checkout/environments/qa/kill', { reason: 'incident 42' }), 'kill qa');
  ok(
    await a.put('/api/v1/flags/search/environments/production/canary', { control: 'off', canary: 'on', stages: [{ percent: 10 }, { percent: 50 }] }),
    'canary',
  );
  opsToken = ok(await a.post('/api/v1/tokens', { kind: 'admin', name: 'ops' }), 'admin token').body.token;
  backendKey = ok(await a.post('/api/v1/tokens', { kind: 'sdk', name: 'backend', environment: 'production' }), 'sdk key').body.token;
  mobileKey = ok(await a.post('/api/v1/tokens', { kind: 'sdk', name: 'mobile', environment: 'production', clientSide: true }), 'client key').body
    .token;
  metricsReport = {
    sdkId: 'sdk-before-the-move',
    seq: 1,
    sdk: { name: 'test', version: '0.0.0' },
    stats: [{ flag: 'checkout', variant: 'off', minute, evaluations: 12, reasons: { OFF: 12 }, outcomes: 3, errors: 1, latency: { '100': 3 } }],
  };
  ok(await api(source).post('/sdk/v1/metrics', metricsReport, { token: backendKey }), 'metrics');

  // An SDK on production applies a snapshot, then two more writes land while it is away.
  const stream = new RawStream(source, backendKey);
  await stream.hello();
  sdkVersion = (await stream.next('hydrate')).version;
  stream.close();
  await revive(source, 'checkout');
  await kill(source, 'checkout');
  // Metrics are ingested in batches: wait until the report is counted before stopping.
  await countedEvaluations(source, 12);
  sdkSnapshot = ok(await api(source).get('/sdk/v1/flags', { token: backendKey }), 'sdk flags').body;
  expect(sdkSnapshot.flags.map((f) => f.key).sort()).toEqual(['banner', 'checkout', 'search']);
  before = await view(source);
  productionVersion = before.environments.find((e: { key: string }) => e.key === 'production').version;
  await source.close({ keepData: true }); // a clean stop (SIGTERM does the same)
}, 60_000);

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe('aviary migrate-store', () => {
  it('copies a stopped installation: PostgreSQL serves the same data, old tokens work, SDKs resume, writes continue', async () => {
    const counts = sqliteCounts(source.dbPath);
    const run = await aviary(['migrate-store', '--from', source.dbPath, '--to', target.url]);
    expect(run.code, run.stderr).toBe(0);
    const out = run.stdout.trimEnd().split('\n');
    expect(out[0]).toMatch(/^migrated .*aviary\.db to postgres:\/\/aviary:\*\*\*@127\.0\.0\.1:\d+\/\S+ in \d+\.\d\d s \(one transaction; /);
    expect(run.stdout).not.toContain(':aviary@'); // the password
    // Every table of the file, with its row count, parents before children.
    for (const [table, n] of Object.entries(counts)) expect(out).toContainEqual(expect.stringMatching(new RegExp(`^${table}\\s+${n}$`)));
    expect(out.findIndex((l) => l.startsWith('environments '))).toBeLessThan(out.findIndex((l) => l.startsWith('flag_states ')));
    expect(counts.audit_log).toBeGreaterThan(10);
    expect(out).toContain(`next audit id: ${Math.max(...before.audit.map((e) => e.id)) + 1}`);
    expect(out).toContainEqual(expect.stringContaining(`production ${productionVersion}`));

    const pg = await serveFromPostgres(target.url, source);
    const stream = new RawStream(pg, backendKey);
    try {
      expect(pg.app.store.dialect).toBe('postgres');
      expect(await view(pg)).toEqual(before);

      // The old tokens: the configured admin token, an API-made admin token, API-made server- and client-side SDK keys.
      expect((await api(pg).get('/api/v1/flags', { token: opsToken })).status).toBe(200);
      expect((await api(pg).get('/sdk/v1/flags', { token: backendKey })).status).toBe(200);
      expect((await api(pg).get('/sdk/v1/flags', { token: mobileKey })).status).toBe(200);
      expect((await api(pg).get('/api/v1/flags', { token: 'avi_admin_not-a-token-at-all' })).status).toBe(401);
      // SDKs get the very snapshot they got before the move (checkout killed, the segment).
      expect(ok(await api(pg).get('/sdk/v1/flags', { token: backendKey }), 'sdk flags').body).toEqual(sdkSnapshot);

      // The SDK that was away resumes from the copied change log: the two deltas it missed, no snapshot.
      await stream.hello(sdkVersion);
      expect((await stream.next('resumed')).version).toBe(productionVersion);
      expect(stream.messages.map((m) => m.type)).toEqual(['delta', 'delta', 'resumed']);

      // The same metrics report again is recognised as already counted (sdk_reports came along); the next one counts.
      ok(await api(pg).post('/sdk/v1/metrics', metricsReport, { token: backendKey }), 'metrics again');
      ok(await api(pg).post('/sdk/v1/metrics', { ...metricsReport, seq: 2 }, { token: backendKey }), 'next metrics');
      await countedEvaluations(pg, 24);
      expect((await api(pg).get(metricsPath)).body.totals.off).toMatchObject({ evaluations: 24, outcomes: 6, errors: 2 });

      // A new write takes the next version and the next audit id, and reaches the resumed SDK.
      const killed = await kill(pg, 'search');
      expect(killed.environmentVersion).toBe(productionVersion + 1);
      const delta = await stream.next('delta', 2);
      expect(delta).toMatchObject({ prev: productionVersion, version: productionVersion + 1 });
      const newest = ok(await api(pg).get('/api/v1/audit?limit=1'), 'audit').body.entries[0];
      expect(newest).toMatchObject({ id: Math.max(...before.audit.map((e) => e.id)) + 1, action: 'flag.kill', resourceKey: 'search' });
    } finally {
      stream.close();
      await pg.app.close(); // before the next test fingerprints the target: a running server renews leases
    }
  }, 60_000);

  it('refuses the same target again, now that it holds data, and changes nothing', async () => {
    const was = await fingerprint(target.url);
    const run = await aviary(['migrate-store', '--from', source.dbPath, '--to', target.url]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(
      /^error: the target postgres:\/\/aviary:\*\*\*@\S+ already holds Aviary data: audit_log \(\d+ rows\), environments \(4 rows\), (flag_usage \(\d+ rows?\), )?flags \(4 rows\), .*tokens \(\d+ rows\)\. /,
    );
    expect(run.stderr).toContain('only copies into an empty database');
    expect(await fingerprint(target.url)).toEqual(was);
  }, 60_000);

  it('refuses a SQLite file that a running server holds', async () => {
    const running = await startServer();
    cleanups.push(() => running.close());
    const fresh = await createTestDatabase();
    cleanups.push(() => fresh.drop());
    const was = await fingerprint(fresh.url);
    const run = await aviary(['migrate-store', '--from', running.dbPath, '--to', fresh.url]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^error: \\S+aviary\\.db is in use by process ${process.pid} on .*: stop that server first\\.`));
    expect(await fingerprint(fresh.url)).toEqual(was);
    expect(empty(was)).toBe(true);
  }, 60_000);

  it('a failure half-way (a row PostgreSQL rejects) rolls back every table copied before it', async () => {
    // A flag state whose flag does not exist: SQLite kept it (foreign keys off), PostgreSQL's foreign key refuses it.
    const damaged = await editedCopy(source.dbPath, 'damaged.db', (db) => {
      db.prepare(
        "INSERT INTO flag_states (environment, flag, state, version, updated_at) SELECT environment, 'ghost', state, 1, 0 FROM flag_states LIMIT 1",
      ).run();
    });
    const fresh = await createTestDatabase();
    cleanups.push(() => fresh.drop());
    const was = await fingerprint(fresh.url);
    const run = await aviary(['migrate-store', '--from', damaged, '--to', fresh.url]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: copying flag_states failed: .*foreign key/);
    expect(await fingerprint(fresh.url)).toEqual(was);
  }, 60_000);

  it('refuses a file an older Aviary wrote (a column missing), and a target that is not a postgres:// URL', async () => {
    const older = await editedCopy(source.dbPath, 'older.db', (db) => {
      db.exec('ALTER TABLE tokens DROP COLUMN client_side');
    });
    const fresh = await createTestDatabase();
    cleanups.push(() => fresh.drop());
    const run = await aviary(['migrate-store', '--from', older, '--to', fresh.url]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: \S+older\.db has no column tokens\.client_side: .*Start this version of the server on it once/);
    expect(empty(await fingerprint(fresh.url))).toBe(true);

    const usage = await aviary(['migrate-store', '--from', source.dbPath, '--to', 'mysql://db/aviary']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toBe('error: --to must be a postgres:// URL (postgres://user:password@host:port/database)\n');
  }, 60_000);

  it('refuses a file whose server did not stop cleanly, and leaves SQLite-only markers behind otherwise', async () => {
    const crashed = await editedCopy(source.dbPath, 'crashed.db', (db) => {
      db.prepare("INSERT INTO server_state (key, value) VALUES ('running', '1')").run();
    });
    const fresh = await createTestDatabase();
    cleanups.push(() => fresh.drop());
    const refused = await aviary(['migrate-store', '--from', crashed, '--to', fresh.url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: \S+crashed\.db was not stopped cleanly: start the server on it once and stop it with SIGTERM/);
    expect(empty(await fingerprint(fresh.url))).toBe(true);

    // A leftover `restored_from` stays behind; any other server_state key is copied.
    const marked = await editedCopy(source.dbPath, 'marked.db', (db) => {
      db.prepare("INSERT INTO server_state (key, value) VALUES ('restored_from', '{}'), ('note', 'kept')").run();
    });
    const run = await aviary(['--json', 'migrate-store', '--from', marked, '--to', fresh.url]);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({
      skipped: ['restored_from'],
      environments: Object.fromEntries(before.environments.map((e: any) => [e.key, e.version])),
    });
    expect(result.tables).toContainEqual({ table: 'server_state', rows: 1 });
    expect(await withAdmin(fresh.url, (sql) => sql`SELECT key, value FROM server_state`)).toEqual([{ key: 'note', value: 'kept' }]);
  }, 60_000);
});
