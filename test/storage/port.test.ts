/**
 * The store port's contract, run against both adapters: SQLite (a temp file) and PostgreSQL (a database of its own on
 * the run's server). Then what only PostgreSQL has: notifications, concurrent migrations, replicas sharing the write
 * lock, outages (a stopped server, a silent network), and the migrated schema compared with SQLite's.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS_FOLDER } from '../../server/storage/db.js';
import { bool, DatabaseUnavailableError, type StorePort } from '../../server/storage/port.js';
import { openPostgres, POSTGRES_MIGRATIONS_FOLDER, type PostgresPort } from '../../server/storage/postgres-port.js';
import { openSqlite, type SqlitePort } from '../../server/storage/sqlite-port.js';
import {
  createEmptyTestDatabase,
  createTestDatabase,
  type EmbeddedPostgresServer,
  startEmbeddedPostgres,
  type TestDatabase,
  withAdmin,
} from '../helpers/postgres.js';

/** The newest `when` of a migrations folder's journal (what `latestMigration()` must report once migrated). */
function journal(folder: string): { when: number }[] {
  return (JSON.parse(readFileSync(join(folder, 'meta', '_journal.json'), 'utf8')) as { entries: { when: number }[] }).entries;
}

/** Waits until `check` passes (polling), or fails with its last error after `ms`. */
async function eventually(check: () => void | Promise<void>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

async function elapsed<T>(work: Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
  const t0 = performance.now();
  const [result] = await Promise.allSettled([work]);
  return { ms: performance.now() - t0, result: result! };
}

interface Adapter {
  dialect: 'sqlite' | 'postgres';
  /** Opens a port on a migrated database (PostgreSQL: the suite's; SQLite: a new file, as a file has one owner). */
  open(): Promise<StorePort>;
  journal: { when: number }[];
  cleanup(): Promise<void>;
}

function sqliteAdapter(): Adapter {
  const dir = mkdtempSync(join(tmpdir(), 'aviary-port-'));
  let files = 0;
  return {
    dialect: 'sqlite',
    // One server per SQLite file (db-lock.ts): each port gets its own file.
    open: async () => openSqlite(join(dir, `aviary-${++files}.db`)),
    journal: journal(MIGRATIONS_FOLDER),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

function postgresAdapter(): Adapter {
  let db: TestDatabase | null = null;
  return {
    dialect: 'postgres',
    open: async () => {
      db ??= await createTestDatabase();
      return openPostgres(db.url, { migrate: false });
    },
    journal: journal(POSTGRES_MIGRATIONS_FOLDER),
    cleanup: async () => db?.drop(),
  };
}

const T = 1_796_545_156_990; // epoch ms, beyond 32 bits
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

describe.each([
  ['sqlite', sqliteAdapter],
  ['postgres', postgresAdapter],
] as const)('the store port on %s', (_name, make) => {
  const adapter = make();
  let port: StorePort;

  beforeAll(async () => {
    port = await adapter.open();
  });
  afterAll(async () => {
    await port.close();
    await adapter.cleanup();
  });
  beforeEach(async () => {
    for (const table of ['audit_log', 'flags', 'environments', 'metrics_minute', 'server_state']) await port.run(`DELETE FROM ${table}`);
  });

  it('reports its dialect', () => {
    expect(port.dialect).toBe(adapter.dialect);
  });

  it('runs statements with ? placeholders: all, get and run (with the number of rows changed)', async () => {
    for (const key of ['a', 'b', 'c']) {
      expect(await port.run('INSERT INTO environments (key, name, version, created_at) VALUES (?, ?, ?, ?)', [key, `Env ${key}`, 0, T])).toBe(1);
    }
    expect(await port.all('SELECT key, name FROM environments WHERE key IN (?, ?) ORDER BY key', ['c', 'a'])).toEqual([
      { key: 'a', name: 'Env a' },
      { key: 'c', name: 'Env c' },
    ]);
    expect(await port.get('SELECT name FROM environments WHERE key = ?', ['b'])).toEqual({ name: 'Env b' });
    expect(await port.get('SELECT name FROM environments WHERE key = ?', ['nope'])).toBeUndefined();
    expect(await port.all('SELECT key FROM environments WHERE key = ?', ['nope'])).toEqual([]);
    expect(await port.run('UPDATE environments SET version = version + ? WHERE key <> ?', [5, 'b'])).toBe(2);
    expect(await port.run('DELETE FROM environments WHERE key = ?', ['nope'])).toBe(0);
    // The `?` inside a literal is not a placeholder.
    expect(await port.get("SELECT count(*) AS n FROM environments WHERE name <> '?' AND key = ?", ['a'])).toEqual({ n: 1 });
  });

  it('round-trips booleans, JSON text, nulls, big epoch-ms integers and doubles identically', async () => {
    const variants = JSON.stringify([
      { key: 'on', value: true },
      { key: 'off', value: { nested: ['x', 1.5, null] } },
    ]);
    await port.run(
      'INSERT INTO flags (key, kind, variants, description, tags, archived, revision, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ['f1', 'boolean', variants, 'émoji ✓ \'quoted\' "double"', '["a","b"]', true, 1, T, MAX_SAFE],
    );
    await port.run('INSERT INTO flags (key, kind, variants, archived, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)', [
      'f2',
      'json',
      '[]',
      false,
      0,
      -1,
    ]);
    const f1 = await port.get<Record<string, unknown>>('SELECT * FROM flags WHERE key = ?', ['f1']);
    expect(f1).toMatchObject({
      key: 'f1',
      kind: 'boolean',
      variants,
      description: 'émoji ✓ \'quoted\' "double"',
      tags: '["a","b"]',
      created_at: T,
      updated_at: MAX_SAFE,
    });
    expect(typeof f1?.created_at).toBe('number');
    expect(bool(f1?.archived)).toBe(true);
    expect(JSON.parse(f1?.variants as string)).toEqual(JSON.parse(variants));
    const f2 = await port.get<Record<string, unknown>>(
      'SELECT archived, description, tags, revision, created_at, updated_at FROM flags WHERE key = ?',
      ['f2'],
    );
    expect(bool(f2?.archived)).toBe(false);
    // Column defaults are the same on both engines.
    expect(f2).toMatchObject({ description: '', tags: '[]', revision: 1, created_at: 0, updated_at: -1 });
    // Booleans bind as booleans in WHERE clauses too.
    expect(await port.all('SELECT key FROM flags WHERE archived = ? ORDER BY key', [true])).toEqual([{ key: 'f1' }]);
    // Aggregates are numbers.
    const agg = await port.get<Record<string, unknown>>(
      'SELECT count(*) AS n, sum(revision) AS s, max(created_at) AS m, min(updated_at) AS lo FROM flags',
    );
    expect(agg).toEqual({ n: 2, s: 2, m: T, lo: -1 });
    // Nulls, doubles, and integer arithmetic on bound epoch-ms values.
    await port.run(
      'INSERT INTO metrics_minute (environment, flag, variant, minute, evaluations, reasons, latency, value_sum, value_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ['e', 'f', '', T - (T % 60_000), 3, '{"TARGETING_MATCH":3}', null, 0.1 + 0.2, 2],
    );
    const m = await port.get<Record<string, unknown>>(
      'SELECT minute + ? AS later, latency, value_sum, reasons FROM metrics_minute WHERE minute >= ? - ?',
      [60_000, T, 3_600_000],
    );
    expect(m).toEqual({ later: T - (T % 60_000) + 60_000, latency: null, value_sum: 0.1 + 0.2, reasons: '{"TARGETING_MATCH":3}' });
  });

  // Writes go through transactions or `run`: on SQLite, `all` and `get` outside a transaction use the read connection.
  it('returns rows from RETURNING (get, all) and counts them from run', async () => {
    const insert = 'INSERT INTO audit_log (at, actor_name, action, resource_type, resource_key) VALUES (?, ?, ?, ?, ?) RETURNING id, at';
    const [first, second] = await port.transaction(async (tx) => [
      await tx.get<{ id: number; at: number }>(insert, [T, 'tester', 'flag.create', 'flag', 'f1']),
      await tx.all<{ id: number; at: number }>(insert, [T + 1, 'tester', 'flag.update', 'flag', 'f1']),
    ]);
    expect(typeof first?.id).toBe('number');
    expect(second).toEqual([{ id: first!.id + 1, at: T + 1 }]);
    expect(await port.run('UPDATE audit_log SET reason = ? WHERE resource_key = ? RETURNING id', ['why', 'f1'])).toBe(2);
    expect(await port.all('SELECT reason FROM audit_log')).toEqual([{ reason: 'why' }, { reason: 'why' }]);
  });

  it('upserts with ON CONFLICT DO NOTHING and DO UPDATE', async () => {
    const insert = 'INSERT INTO environments (key, name, created_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING';
    expect(await port.run(insert, ['prod', 'Production', T])).toBe(1);
    expect(await port.run(insert, ['prod', 'Other', T])).toBe(0);
    expect(await port.get('SELECT name FROM environments WHERE key = ?', ['prod'])).toEqual({ name: 'Production' });
    const upsert =
      'INSERT INTO environments (key, name, version, created_at) VALUES (?, ?, ?, ?) ' +
      'ON CONFLICT (key) DO UPDATE SET name = excluded.name, version = environments.version + ? RETURNING version';
    const versions = await port.transaction(async (tx) => [
      await tx.get(upsert, ['prod', 'Prod', 7, T, 3]),
      await tx.get(upsert, ['prod', 'Prod 2', 7, T, 3]),
      await tx.get(upsert, ['new', 'New', 7, T, 3]),
    ]);
    expect(versions).toEqual([{ version: 3 }, { version: 6 }, { version: 7 }]);
    expect(await port.get('SELECT name FROM environments WHERE key = ?', ['prod'])).toEqual({ name: 'Prod 2' });
  });

  it('commits a transaction when its body resolves, with its value', async () => {
    const value = await port.transaction(
      async (tx) => {
        await tx.run('INSERT INTO environments (key, name, created_at) VALUES (?, ?, ?)', ['t1', 'T1', T]);
        const row = await tx.get<{ n: number }>('SELECT count(*) AS n FROM environments');
        await tx.run('UPDATE environments SET version = ? WHERE key = ?', [row!.n, 't1']);
        return (await tx.all<{ key: string }>('SELECT key FROM environments')).map((r) => r.key);
      },
      { lock: 'write' },
    );
    expect(value).toEqual(['t1']);
    expect(await port.get('SELECT version FROM environments WHERE key = ?', ['t1'])).toEqual({ version: 1 });
  });

  it('rolls a transaction back when its body throws: nothing is written and the error is rethrown', async () => {
    const boom = new Error('boom');
    await expect(
      port.transaction(async (tx) => {
        await tx.run('INSERT INTO environments (key, name, created_at) VALUES (?, ?, ?)', ['t2', 'T2', T]);
        await tx.run("INSERT INTO server_state (key, value) VALUES ('k', 'v')");
        throw boom;
      }),
    ).rejects.toBe(boom);
    // A failing statement rolls back what came before it too.
    await expect(
      port.transaction(async (tx) => {
        await tx.run('INSERT INTO environments (key, name, created_at) VALUES (?, ?, ?)', ['t3', 'T3', T]);
        await tx.run('INSERT INTO environments (key, name, created_at) VALUES (?, ?, ?)', ['t3', 'T3 again', T]);
      }),
    ).rejects.toThrow();
    expect(await port.all('SELECT key FROM environments')).toEqual([]);
    expect(await port.all('SELECT key FROM server_state')).toEqual([]);
    // The port is still usable afterwards.
    await port.transaction((tx) => tx.run("INSERT INTO server_state (key, value) VALUES ('k', 'v')"));
    expect(await port.all('SELECT key, value FROM server_state')).toEqual([{ key: 'k', value: 'v' }]);
  });

  it("serializes concurrent read-increment-write transactions under lock 'write': no update is lost", async () => {
    await port.run('INSERT INTO environments (key, name, version, created_at) VALUES (?, ?, ?, ?)', ['c', 'C', 0, T]);
    const bump = () =>
      port.transaction(
        async (tx) => {
          const row = await tx.get<{ version: number }>('SELECT version FROM environments WHERE key = ?', ['c']);
          await tx.run('UPDATE environments SET version = ? WHERE key = ?', [row!.version + 1, 'c']);
          return row!.version + 1;
        },
        { lock: 'write' },
      );
    const versions = await Promise.all(Array.from({ length: 20 }, bump));
    expect(versions.toSorted((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await port.get('SELECT version FROM environments WHERE key = ?', ['c'])).toEqual({ version: 20 });
  });

  it('gives a read-only transaction one consistent view, and refuses writes in it', async () => {
    await port.run('INSERT INTO environments (key, name, created_at) VALUES (?, ?, ?)', ['r1', 'R1', T]);
    const seen = await port.transaction(
      async (tx) => {
        const before = await tx.get<{ n: number }>('SELECT count(*) AS n FROM environments');
        // Committed by someone else meanwhile.
        await port.run('INSERT INTO environments (key, name, created_at) VALUES (?, ?, ?)', ['r2', 'R2', T]);
        const after = await tx.get<{ n: number }>('SELECT count(*) AS n FROM environments');
        return [before!.n, after!.n];
      },
      { readOnly: true },
    );
    expect(seen).toEqual([1, 1]);
    expect(await port.get('SELECT count(*) AS n FROM environments')).toEqual({ n: 2 });
    await expect(
      port.transaction((tx) => tx.run('INSERT INTO environments (key, name, created_at) VALUES (?, ?, ?)', ['r3', 'R3', T]), { readOnly: true }),
    ).rejects.toThrow();
    expect(await port.get('SELECT count(*) AS n FROM environments')).toEqual({ n: 2 });
  });

  it('rejects a statement whose values do not match its placeholders, and bad SQL, without breaking the port', async () => {
    await expect(port.run('INSERT INTO server_state (key, value) VALUES (?, ?)', ['only one'])).rejects.toThrow();
    await expect(port.all('SELECT nope FROM server_state')).rejects.toThrow();
    await expect(port.all('SELECT nope FROM server_state')).rejects.not.toBeInstanceOf(DatabaseUnavailableError);
    expect(await port.all('SELECT key FROM server_state')).toEqual([]);
  });

  it('is durable, answers pings, and reports the newest applied migration', async () => {
    await port.transaction((tx) => tx.run("INSERT INTO server_state (key, value) VALUES ('d', '1')"));
    await expect(port.durable()).resolves.toBeUndefined();
    await expect(port.ping(1000)).resolves.toBeUndefined();
    expect(await port.latestMigration()).toBe(Math.max(...adapter.journal.map((e) => e.when)));
  });

  it('sends notifications only from committed transactions (a no-op on SQLite)', async () => {
    const received: string[] = [];
    let listens = 0;
    const sub = await port.listen(
      'aviary_port_test',
      (payload) => received.push(payload),
      () => listens++,
    );
    await expect(
      port.transaction(async (tx) => {
        await tx.notify('aviary_port_test', 'rolled-back');
        throw new Error('no');
      }),
    ).rejects.toThrow('no');
    await port.transaction(async (tx) => {
      await tx.notify('aviary_port_test', 'production:1');
      await tx.notify('aviary_port_test', 'production:2');
    });
    if (adapter.dialect === 'postgres') {
      expect(listens).toBe(1);
      await eventually(() => expect(received).toEqual(['production:1', 'production:2']));
    } else {
      await new Promise((r) => setTimeout(r, 50));
      expect(received).toEqual([]);
    }
    await sub.unlisten();
    await port.transaction((tx) => tx.notify('aviary_port_test', 'after unlisten'));
    await new Promise((r) => setTimeout(r, 100));
    expect(received).not.toContain('after unlisten');
  });

  it('closes idempotently; a closed port refuses work', async () => {
    const other = await adapter.open();
    await other.get('SELECT 1 AS one');
    await Promise.all([other.close(), other.close()]);
    await other.close();
    await expect(other.ping(500)).rejects.toThrow();
  });
});

describe('PostgreSQL only', () => {
  const databases: TestDatabase[] = [];
  const ports: PostgresPort[] = [];
  const track = (port: PostgresPort) => {
    ports.push(port);
    return port;
  };
  afterAll(async () => {
    await Promise.all(ports.map((p) => p.close()));
    await Promise.all(databases.map((d) => d.drop()));
  });

  it('migrates a fresh database exactly once when several replicas boot at the same time', async () => {
    const db = await createEmptyTestDatabase();
    databases.push(db);
    const opened = await Promise.all(Array.from({ length: 4 }, () => openPostgres(db.url)).map((p) => p.then(track)));
    const entries = journal(POSTGRES_MIGRATIONS_FOLDER);
    const applied = await opened[0]!.all<{ hash: string; created_at: number }>(
      'SELECT hash, created_at FROM drizzle.__drizzle_migrations ORDER BY id',
    );
    expect(applied.map((m) => m.created_at)).toEqual(entries.map((e) => e.when));
    for (const port of opened) expect(await port.latestMigration()).toBe(entries.at(-1)!.when);
    // Booting again applies nothing.
    track(await openPostgres(db.url));
    expect(await opened[0]!.get('SELECT count(*) AS n FROM drizzle.__drizzle_migrations')).toEqual({ n: entries.length });
    // An unmigrated database reports no migration.
    const empty = await createEmptyTestDatabase();
    databases.push(empty);
    expect(await track(await openPostgres(empty.url, { migrate: false })).latestMigration()).toBeNull();
  });

  it("serializes 'write' transactions across replicas (two ports on one database)", async () => {
    const db = await createTestDatabase();
    databases.push(db);
    const [a, b] = [track(await openPostgres(db.url, { migrate: false })), track(await openPostgres(db.url, { migrate: false }))];
    await a.run('INSERT INTO environments (key, name, version, created_at) VALUES (?, ?, ?, ?)', ['x', 'X', 0, T]);
    const bump = (port: PostgresPort) =>
      port.transaction(
        async (tx) => {
          const row = await tx.get<{ version: number }>('SELECT version FROM environments WHERE key = ?', ['x']);
          await tx.run('UPDATE environments SET version = ? WHERE key = ?', [row!.version + 1, 'x']);
          await tx.notify('aviary_versions', `x:${row!.version + 1}`);
        },
        { lock: 'write' },
      );
    const heard: string[] = [];
    const sub = await b.listen('aviary_versions', (p) => heard.push(p));
    await Promise.all(Array.from({ length: 20 }, (_, i) => bump(i % 2 ? a : b)));
    expect(await b.get('SELECT version FROM environments WHERE key = ?', ['x'])).toEqual({ version: 20 });
    // Notifications arrive in commit order, which under the lock is version order.
    await eventually(() => expect(heard).toEqual(Array.from({ length: 20 }, (_, i) => `x:${i + 1}`)));
    await sub.unlisten();
  });

  describe('outages', () => {
    let server: EmbeddedPostgresServer;
    let url: string;
    beforeAll(async () => {
      server = await startEmbeddedPostgres();
      url = (await server.createDatabase()).url;
    });
    afterAll(async () => {
      await server?.dispose();
    });

    it('answers DatabaseUnavailableError promptly while PostgreSQL is stopped, and recovers by itself (re-LISTEN included)', async () => {
      const timeoutMs = 1000;
      const port = track(await openPostgres(url, { timeoutMs }));
      await port.run('INSERT INTO environments (key, name, created_at) VALUES (?, ?, ?)', ['o', 'O', T]);
      const heard: string[] = [];
      let listens = 0;
      await port.listen(
        'aviary_outage',
        (p) => heard.push(p),
        () => listens++,
      );
      expect(listens).toBe(1);

      await server.stop();
      for (const work of [
        port.all<unknown>('SELECT key FROM environments'),
        port.run('UPDATE environments SET version = version + 1'),
        port.transaction((tx) => tx.run('UPDATE environments SET version = version + 1'), { lock: 'write' }),
        port.ping(timeoutMs),
      ] as Promise<unknown>[]) {
        const { ms, result } = await elapsed(work);
        expect(result.status).toBe('rejected');
        expect((result as PromiseRejectedResult).reason).toBeInstanceOf(DatabaseUnavailableError);
        expect(ms).toBeLessThan(timeoutMs + 500);
      }

      await server.start();
      await eventually(() => port.ping(timeoutMs), 10_000);
      expect(await port.get('SELECT version FROM environments WHERE key = ?', ['o'])).toEqual({ version: 0 });
      // The listener came back by itself and said so (a follower catches up from the log at that moment).
      await eventually(() => expect(listens).toBe(2), 10_000);
      await port.transaction((tx) => tx.notify('aviary_outage', 'back'));
      await eventually(() => expect(heard).toEqual(['back']));
    });

    it('never sends COMMIT once the deadline has passed, even when the body then returns normally', async () => {
      const timeoutMs = 500;
      const port = track(await openPostgres(url, { timeoutMs }));
      await port.run('INSERT INTO environments (key, name, created_at) VALUES (?, ?, ?)', ['slow', 'Slow', T]);
      let returned = false;
      const { ms, result } = await elapsed(
        port.transaction(async (tx) => {
          await tx.run('UPDATE environments SET version = 100 WHERE key = ?', ['slow']);
          // Not what a body should do (port.ts), but it must still not commit after the caller was told 503.
          await new Promise((r) => setTimeout(r, timeoutMs + 200));
          returned = true;
        }),
      );
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(DatabaseUnavailableError);
      expect(ms).toBeLessThan(timeoutMs + 300);
      await eventually(() => expect(returned).toBe(true));
      await new Promise((r) => setTimeout(r, 100));
      expect(await port.get('SELECT version FROM environments WHERE key = ?', ['slow'])).toEqual({ version: 0 });
    });

    it('rolls back a transaction whose answers arrive after its deadline', async () => {
      const timeoutMs = 800;
      const proxy = await silentProxy(server.port);
      try {
        const port = track(await openPostgres(proxyUrl(url, proxy.port), { timeoutMs }));
        await port.run('INSERT INTO environments (key, name, created_at) VALUES (?, ?, ?)', ['late', 'Late', T]);
        const { ms, result } = await elapsed(
          port.transaction(async (t) => {
            await t.run('UPDATE environments SET version = 100 WHERE key = ?', ['late']);
            // The server runs the next statement at once, but its answer is held past the deadline.
            proxy.silence('answers');
            await t.run('UPDATE environments SET version = 200 WHERE key = ?', ['late']);
          }),
        );
        expect((result as PromiseRejectedResult).reason).toBeInstanceOf(DatabaseUnavailableError);
        expect(ms).toBeLessThan(timeoutMs + 300);
        proxy.resume();
        await eventually(() => port.ping(timeoutMs), 5000);
        await withAdmin(url, async (sql) => {
          await eventually(async () =>
            expect(await sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'`).toEqual([{ n: 0 }]),
          );
          expect(await sql`SELECT version::int AS v FROM environments WHERE key = 'late'`).toEqual([{ v: 0 }]);
        });
      } finally {
        await proxy.close();
      }
    });

    it('answers within the deadline when the server goes silent, and a transaction past its deadline never commits', async () => {
      const timeoutMs = 800;
      const proxy = await silentProxy(server.port);
      try {
        const port = track(await openPostgres(proxyUrl(url, proxy.port), { timeoutMs }));
        await port.run('INSERT INTO environments (key, name, created_at) VALUES (?, ?, ?)', ['s', 'S', T]);

        // A transaction whose second statement meets a silent network.
        const tx = elapsed(
          port.transaction(
            async (t) => {
              await t.run('UPDATE environments SET version = 100 WHERE key = ?', ['s']);
              proxy.silence();
              await t.run('UPDATE environments SET version = 200 WHERE key = ?', ['s']);
            },
            { lock: 'write' },
          ),
        );
        const { ms, result } = await tx;
        expect(result.status).toBe('rejected');
        expect((result as PromiseRejectedResult).reason).toBeInstanceOf(DatabaseUnavailableError);
        expect(ms).toBeLessThan(timeoutMs + 300);

        // A statement against the silent server.
        const statement = await elapsed(port.get('SELECT version FROM environments WHERE key = ?', ['s']));
        expect(statement.result.status).toBe('rejected');
        expect((statement.result as PromiseRejectedResult).reason).toBeInstanceOf(DatabaseUnavailableError);
        expect(statement.ms).toBeLessThan(timeoutMs + 300);

        // The network comes back with everything it held: the expired transaction still does not commit.
        await new Promise((r) => setTimeout(r, 300));
        proxy.resume();
        await eventually(() => port.ping(timeoutMs), 15_000);
        await new Promise((r) => setTimeout(r, 300));
        await withAdmin(url, async (sql) => {
          expect(await sql`SELECT version::int AS v FROM environments WHERE key = 's'`).toEqual([{ v: 0 }]);
        });
      } finally {
        await proxy.close();
      }
    });
  });
});

describe('the migrated PostgreSQL schema matches the SQLite one', () => {
  let sqlite: SqlitePort;
  let pg: PostgresPort;
  let db: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aviary-port-'));
    sqlite = openSqlite(join(dir, 'aviary.db'));
    db = await createTestDatabase();
    pg = await openPostgres(db.url, { migrate: false });
  });
  afterAll(async () => {
    await sqlite?.close();
    await pg?.close();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
  /** Defaults as comparable text: PostgreSQL's casts dropped, SQLite's boolean `false` is 0. */
  const normalizeDefault = (d: string | null) =>
    d === null
      ? null
      : d
          .replace(/::[a-z ]+$/, '')
          .replace(/^false$/, '0')
          .replace(/^true$/, '1');

  async function sqliteShape() {
    const tables = (
      await sqlite.all<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '__drizzle_migrations' ORDER BY name",
      )
    ).map((t) => t.name);
    const shape: Record<string, unknown> = {};
    for (const table of tables) {
      const columns = await sqlite.all<{ name: string; notnull: number; dflt_value: string | null; pk: number; type: string }>(
        `SELECT name, "notnull", dflt_value, pk, type FROM pragma_table_info('${table}') ORDER BY cid`,
      );
      const indexes = await sqlite.all<{ name: string }>(`SELECT name FROM pragma_index_list('${table}') WHERE origin = 'c' ORDER BY name`);
      const fks = await sqlite.all<{ from: string; table: string; to: string; on_delete: string }>(
        `SELECT "from", "table", "to", on_delete FROM pragma_foreign_key_list('${table}') ORDER BY "from"`,
      );
      shape[table] = {
        // Sorted by name: a column added later by ALTER TABLE comes last on SQLite.
        columns: columns.toSorted(byName).map((c) => ({
          name: c.name,
          nullable: c.notnull === 0 && c.pk === 0,
          // INTEGER PRIMARY KEY AUTOINCREMENT: generated, like PostgreSQL's identity column.
          default:
            c.pk === 1 && c.type.toLowerCase() === 'integer' && columns.filter((x) => x.pk > 0).length === 1
              ? 'generated'
              : normalizeDefault(c.dflt_value),
        })),
        primaryKey: columns
          .filter((c) => c.pk > 0)
          .toSorted((a, b) => a.pk - b.pk)
          .map((c) => c.name),
        indexes: indexes.map((i) => i.name),
        foreignKeys: fks.map((f) => `${f.from} -> ${f.table}(${f.to}) ON DELETE ${f.on_delete.toLowerCase()}`),
      };
    }
    return shape;
  }

  async function postgresShape() {
    const tables = (
      await pg.all<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")
    ).map((t) => t.name);
    const shape: Record<string, unknown> = {};
    for (const table of tables) {
      const columns = await pg.all<{ name: string; is_nullable: string; column_default: string | null; is_identity: string }>(
        'SELECT column_name AS name, is_nullable, column_default, is_identity FROM information_schema.columns ' +
          "WHERE table_schema = 'public' AND table_name = ? ORDER BY ordinal_position",
        [table],
      );
      const primaryKey = await pg.all<{ name: string }>(
        'SELECT a.attname AS name FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) ' +
          'WHERE i.indrelid = CAST(? AS regclass) AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)',
        [`public.${table}`],
      );
      const indexes = await pg.all<{ name: string }>(
        'SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = CAST(? AS regclass) AND NOT i.indisprimary ORDER BY c.relname',
        [`public.${table}`],
      );
      const fks = await pg.all<{ from: string; table: string; to: string; on_delete: string }>(
        'SELECT kcu.column_name AS "from", ccu.table_name AS "table", ccu.column_name AS "to", rc.delete_rule AS on_delete ' +
          'FROM information_schema.referential_constraints rc ' +
          'JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = rc.constraint_name AND kcu.constraint_schema = rc.constraint_schema ' +
          'JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = rc.constraint_name AND ccu.constraint_schema = rc.constraint_schema ' +
          "WHERE kcu.table_schema = 'public' AND kcu.table_name = ? ORDER BY kcu.column_name",
        [table],
      );
      shape[table] = {
        columns: columns.toSorted(byName).map((c) => ({
          name: c.name,
          nullable: c.is_nullable === 'YES',
          default: c.is_identity === 'YES' ? 'generated' : normalizeDefault(c.column_default),
        })),
        primaryKey: primaryKey.map((c) => c.name),
        indexes: indexes.map((i) => i.name),
        foreignKeys: fks.map((f) => `${f.from} -> ${f.table}(${f.to}) ON DELETE ${f.on_delete.toLowerCase()}`),
      };
    }
    return shape;
  }

  it('has the same tables, columns (names, nullability, defaults), primary keys, indexes and foreign keys', async () => {
    const [s, p] = [await sqliteShape(), await postgresShape()];
    expect(Object.keys(s).length).toBeGreaterThan(10);
    expect(p).toEqual(s);
  });
});

/**
 * A TCP proxy to 127.0.0.1:`target` that can go silent: from `silence()` to `resume()` it holds every byte and every
 * close (both ways, or only the server's answers with `silence('answers')`), as a network partition would, then
 * delivers them in order.
 */
async function silentProxy(
  target: number,
): Promise<{ port: number; silence(which?: 'both' | 'answers'): void; resume(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let silent: 'none' | 'both' | 'answers' = 'none';
  const held: (() => void)[] = [];
  const server: Server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      const deliver = (action: () => void) => (silent === 'both' || (silent === 'answers' && from === upstream) ? held.push(action) : action());
      sockets.add(from);
      from.on('data', (chunk) => deliver(() => to.write(chunk)));
      from.on('close', () => {
        sockets.delete(from);
        deliver(() => to.destroy());
      });
      from.on('error', () => undefined);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    silence(which = 'both') {
      silent = which;
    },
    resume() {
      silent = 'none';
      for (const action of held.splice(0)) action();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function proxyUrl(url: string, port: number): string {
  const u = new URL(url);
  u.port = String(port);
  return u.toString();
}
