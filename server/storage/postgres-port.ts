/**
 * The PostgreSQL adapter of the store port (`AVIARY_DATABASE_URL`): any number of replicas share one database.
 *
 * postgres.js (`postgres`) holds a pool of connections with named prepared statements; `listen()` runs on a dedicated
 * connection that postgres.js re-LISTENs after every reconnect. The SQL is the one the SQLite adapter runs: `?`
 * placeholders are numbered here (`$1`, `$2`, ...), integers are bound as int8, other numbers as float8 and booleans as
 * booleans (strings and nulls untyped, so the server takes the column's type), and int8 and numeric results (bigint
 * columns, `count(*)`, `sum(...)`) are read back as JS numbers.
 *
 * Outages: every statement and transaction has a deadline of `timeoutMs` from the call (waiting for the local lock
 * queue and a pooled connection included) and rejects with `DatabaseUnavailableError` when it passes, or as soon as the
 * server is found unreachable (refused or lost connections, server shutdown, statement timeout). The server enforces
 * the same limit (`statement_timeout`; `idle_in_transaction_session_timeout` at twice it), and postgres.js's `query_timeout`
 * cancels what runs past it and closes a connection whose cancel request goes unanswered, so a silent server or
 * network cannot leave connections wedged behind a request that was already answered 503.
 *
 * A transaction that passes its deadline never half-applies:
 * - before COMMIT is sent, the body's next statement rejects, the pending one is canceled, and the transaction is
 *   rolled back (or, if its connection is gone, the server discards it);
 * - COMMIT is never sent after the deadline (the body's result is checked first);
 * - a COMMIT already on the wire when the deadline passes is the one ambiguous case (as with any database client):
 *   the caller gets `DatabaseUnavailableError` while the server may still commit the whole transaction. It commits
 *   all or nothing, never part. Writers therefore take their versions from the counter row inside the transaction,
 *   and a client retrying such a write sees its effect (or applies it) like any other write.
 */
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate as drizzleMigrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { migrationsFolder } from './migrations.js';
import {
  DatabaseUnavailableError,
  type SqlValue,
  type StorePort,
  type Subscription,
  type TransactionLock,
  type TransactionOptions,
  type Tx,
} from './port.js';

/** Where drizzle-kit writes the PostgreSQL migrations (repo root `migrations/postgres/`). */
export const POSTGRES_MIGRATIONS_FOLDER = migrationsFolder('postgres');

/**
 * Advisory locks (two-key form: `pg_advisory_lock(ADVISORY_LOCK_CLASS, n)`): the class keeps Aviary's locks apart from
 * any other application's on the same database. `migrate` is held on a session while migrations run; the others are
 * transaction locks taken by `transaction(fn, { lock })`. New duties take numbers from 100 up.
 */
export const ADVISORY_LOCK_CLASS = 0x41564941; // 'AVIA'
export const ADVISORY_LOCKS = { migrate: 1, write: 2, ingest: 3 } as const satisfies Record<TransactionLock | 'migrate', number>;

/** Options of {@link openPostgres}. */
export interface PostgresOptions {
  /** Deadline of every statement and transaction, in ms (`AVIARY_DB_TIMEOUT_MS`). Default 5000. */
  timeoutMs?: number;
  /** Run pending migrations first, under an advisory lock (default true). */
  migrate?: boolean;
  /** Most pooled connections (default 10); `listen()` uses one more. */
  max?: number;
  /** Where server notices go (default: nowhere). */
  log?: { warn: (obj: unknown, msg: string) => void };
}

const DEFAULT_TIMEOUT_MS = 5000;
const INT8 = 20;
const FLOAT8 = 701;
const BOOL = 16;
const NUMERIC = 1700;

/** Error codes meaning "the database is not answering" rather than "this statement is wrong". */
const CLIENT_UNAVAILABLE = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'QUERY_TIMEOUT',
  'QUEUE_TIMEOUT',
  'CANCEL_UNANSWERED',
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
const SERVER_UNAVAILABLE = new Set([
  '57014', // query_canceled: statement_timeout, or our own cancel at the deadline
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down, in recovery)
  '57P05', // idle_session_timeout
  '25P03', // idle_in_transaction_session_timeout
  '25006', // read_only_sql_transaction: the URL reaches a read-only standby (after a failover, a stale DNS name)
  '53300', // too_many_connections
  '53100', // disk_full
  '53200', // out_of_memory
]);

/** Whether `err` says the database could not be reached or did not answer in time. */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof DatabaseUnavailableError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return CLIENT_UNAVAILABLE.has(code) || SERVER_UNAVAILABLE.has(code) || code.startsWith('08');
}

function unavailable(err: unknown): unknown {
  if (err instanceof DatabaseUnavailableError || !isUnavailable(err)) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new DatabaseUnavailableError(`the database is unavailable: ${reason}`, { cause: err });
}

/** Numbers the `?` placeholders of `text` (`$1`, `$2`, ...), leaving quoted literals and identifiers alone. */
function numberPlaceholders(text: string): { text: string; count: number } {
  let out = '';
  let count = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === '?') {
      out += text.slice(start, i) + '$' + ++count;
      start = i + 1;
    }
  }
  return { text: out + text.slice(start), count };
}

/** Runs `work` with a deadline: past `ms` it rejects with DatabaseUnavailableError and calls `onExpire` once. */
function withDeadline<T>(work: Promise<T>, ms: number, what: string, onExpire: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new DatabaseUnavailableError(`the database did not answer within ${ms} ms (${what})`));
      onExpire();
    }, ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(unavailable(err));
      },
    );
  });
}

/** int8 and numeric read as JS numbers (postgres.js reads them as strings by default). */
const TYPES = {
  int8: { to: INT8, from: [INT8], serialize: (x: number) => String(x), parse: (x: string) => Number(x) },
  numeric: { to: NUMERIC, from: [NUMERIC], serialize: (x: number) => String(x), parse: (x: string) => Number(x) },
};
type Types = { int8: number; numeric: number };
type Client = postgres.Sql<Types>;
type Runner = Pick<Client, 'unsafe'>;
type Row = Record<string, unknown>;

/** The PostgreSQL adapter. */
export class PostgresPort implements StorePort {
  readonly dialect = 'postgres' as const;
  readonly timeoutMs: number;
  private readonly sql: Client;
  private readonly texts = new Map<string, { text: string; count: number }>();
  /** Per lock, the tail of this process's queue: one transaction per lock waits on the server's advisory lock at a time. */
  private readonly lockTails = new Map<TransactionLock, Promise<void>>();
  private closing: Promise<void> | null = null;

  constructor(url: string, options: PostgresOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const seconds = this.timeoutMs / 1000;
    const log = options.log;
    this.sql = postgres(url, {
      max: options.max ?? 10,
      connect_timeout: seconds,
      query_timeout: seconds,
      cancel_timeout: seconds,
      // Idle connections are closed after a minute and every connection is replaced after 30 to 60 minutes
      // (postgres.js's default), so a replica does not hold the server's connection slots it no longer needs.
      idle_timeout: 60,
      keep_alive: 10,
      // Reconnect (and re-LISTEN) quickly after an outage: at most 2 s apart, with jitter.
      backoff: (attempt: number) => (0.5 + Math.random() / 2) * Math.min(3 ** attempt / 100, 2),
      fetch_types: false,
      onnotice: (notice) => log?.warn({ notice }, 'database notice'),
      types: TYPES,
      connection: {
        application_name: 'aviary',
        statement_timeout: this.timeoutMs,
        // The server's backstop for a client that vanished mid-transaction; later than the client's own deadline, which
        // rolls back (or never commits) first.
        idle_in_transaction_session_timeout: 2 * this.timeoutMs,
      },
    });
  }

  private prepare(text: string, params: readonly SqlValue[]): { text: string; args: postgres.ParameterOrJSON<never>[] } {
    let numbered = this.texts.get(text);
    if (!numbered) {
      numbered = numberPlaceholders(text);
      // The SQL texts are the stores' constants; a bound keeps a caller that builds SQL dynamically from growing this.
      if (this.texts.size >= 2000) this.texts.clear();
      this.texts.set(text, numbered);
    }
    if (numbered.count !== params.length) {
      throw new RangeError(`the statement has ${numbered.count} placeholders but ${params.length} values were bound: ${text}`);
    }
    return { text: numbered.text, args: params.map((p) => this.bind(p)) };
  }

  private bind(value: SqlValue): postgres.ParameterOrJSON<never> {
    if (typeof value === 'number') return this.sql.typed(value, Number.isSafeInteger(value) ? INT8 : FLOAT8);
    if (typeof value === 'boolean') return this.sql.typed(value, BOOL);
    return value;
  }

  private execute(runner: Runner, text: string, params: readonly SqlValue[] = []): postgres.PendingQuery<Row[]> {
    const prepared = this.prepare(text, params);
    return runner.unsafe<Row[]>(prepared.text, prepared.args, { prepare: true }).execute();
  }

  /** One statement outside a transaction, with its deadline; canceled (or never sent) when the deadline passes. */
  private statement(text: string, params: readonly SqlValue[] | undefined, timeoutMs = this.timeoutMs): Promise<postgres.RowList<Row[]>> {
    let query: postgres.PendingQuery<Row[]>;
    try {
      query = this.execute(this.sql, text, params);
    } catch (err) {
      return Promise.reject(err);
    }
    return withDeadline(Promise.resolve(query), timeoutMs, 'statement', () => void query.cancel().catch(() => {}));
  }

  async all<T>(text: string, params?: readonly SqlValue[]): Promise<T[]> {
    return (await this.statement(text, params)) as unknown as T[];
  }

  async get<T>(text: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    return (await this.statement(text, params))[0] as T | undefined;
  }

  async run(text: string, params?: readonly SqlValue[]): Promise<number> {
    return (await this.statement(text, params)).count;
  }

  transaction<T>(fn: (tx: Tx) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const { lock, readOnly } = options;
    let expired = false;
    const pending = new Set<postgres.PendingQuery<Row[]>>();
    let begun: ReturnType<Client['begin']> | null = null;

    const body = async (sql: postgres.TransactionSql<Types>): Promise<T> => {
      const exec = async (text: string, params?: readonly SqlValue[]) => {
        if (expired) throw new DatabaseUnavailableError(`the transaction passed its ${this.timeoutMs} ms deadline`);
        const query = this.execute(sql, text, params);
        pending.add(query);
        try {
          return await query;
        } finally {
          pending.delete(query);
        }
      };
      if (lock) await exec(`SELECT pg_advisory_xact_lock(${ADVISORY_LOCK_CLASS}, ${ADVISORY_LOCKS[lock]})`);
      const tx: Tx = {
        all: async <R>(text: string, params?: readonly SqlValue[]) => (await exec(text, params)) as unknown as R[],
        get: async <R>(text: string, params?: readonly SqlValue[]) => (await exec(text, params))[0] as R | undefined,
        run: async (text, params) => (await exec(text, params)).count,
        notify: async (channel, payload) => {
          await exec('SELECT pg_notify(?, ?)', [channel, payload]);
        },
      };
      const value = await fn(tx);
      // Never COMMIT once the caller has been told the database is unavailable: throwing here rolls back.
      if (expired) throw new DatabaseUnavailableError(`the transaction passed its ${this.timeoutMs} ms deadline`);
      return value;
    };

    const start = (): Promise<T> => {
      begun = readOnly ? this.sql.begin('isolation level repeatable read read only', body) : this.sql.begin(body);
      return begun as Promise<T>;
    };

    let work: Promise<T>;
    let release: (() => void) | undefined;
    if (lock) {
      // Queue locally first, so that a burst of writes holds one pooled connection on the advisory lock, not all of them.
      const previous = this.lockTails.get(lock) ?? Promise.resolve();
      const mine = new Promise<void>((resolve) => (release = resolve));
      const tail = previous.then(() => mine);
      this.lockTails.set(lock, tail);
      void tail.then(() => {
        if (this.lockTails.get(lock) === tail) this.lockTails.delete(lock);
      });
      work = previous.then(() => {
        if (expired) throw new DatabaseUnavailableError(`the transaction passed its ${this.timeoutMs} ms deadline`);
        return start();
      });
      work.then(release, release);
    } else {
      work = start();
    }
    return withDeadline(work, this.timeoutMs, readOnly ? 'read-only transaction' : 'transaction', () => {
      expired = true;
      // Still waiting for a connection: withdrawn, never sent. Running: its current statement is canceled.
      void (begun as { cancel?: () => unknown } | null)?.cancel?.();
      for (const query of pending) void query.cancel().catch(() => {});
    });
  }

  async listen(channel: string, onMessage: (payload: string) => void, onListen?: () => void): Promise<Subscription> {
    let active = true;
    const request = this.sql.listen(
      channel,
      (payload) => {
        if (active) onMessage(payload);
      },
      () => {
        if (active) onListen?.();
      },
    );
    const listening = Promise.resolve(request);
    try {
      const sub = await withDeadline(listening, this.timeoutMs, `LISTEN ${channel}`, () => {
        active = false;
        // It may still succeed later: then undo it.
        listening.then(
          (late) => late.unlisten().catch(() => {}),
          () => {},
        );
      });
      return {
        unlisten: async () => {
          active = false;
          await sub.unlisten();
        },
      };
    } catch (err) {
      active = false;
      throw err;
    }
  }

  /** A commit is durable when it returns (`synchronous_commit` on, PostgreSQL's default). */
  durable(): Promise<void> {
    return Promise.resolve();
  }

  /** Answers within `timeoutMs`, and is the writable primary (a read-only standby could serve reads but no write). */
  async ping(timeoutMs: number): Promise<void> {
    const rows = await this.statement("SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on' AS standby", [], timeoutMs);
    if (rows[0]?.standby === true) throw new DatabaseUnavailableError('the database is a read-only standby (or read-only); writes cannot be taken');
  }

  async latestMigration(): Promise<number | null> {
    try {
      const row = await this.get<{ at: number | null }>('SELECT max(created_at) AS at FROM drizzle.__drizzle_migrations');
      return row?.at ?? null;
    } catch (err) {
      // 42P01 undefined_table, 3F000 invalid_schema_name: never migrated.
      const code = (err as { code?: unknown }).code;
      if (code === '42P01' || code === '3F000') return null;
      throw err;
    }
  }

  /** Waits up to `timeoutMs` for what is running, then closes every connection (the listener's too). Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.sql.end({ timeout: this.timeoutMs / 1000 });
    return this.closing;
  }
}

/**
 * Applies pending migrations on one dedicated connection, under a session advisory lock: replicas booting together
 * wait for the first one's migrations and then find nothing left to apply. drizzle runs all pending migrations in one
 * transaction and records them in `drizzle.__drizzle_migrations` (hash, created_at = the journal's `when`).
 */
export async function migratePostgres(url: string, options: { timeoutMs?: number } = {}): Promise<void> {
  let lost = false;
  const sql = postgres(url, {
    max: 1,
    connect_timeout: (options.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000,
    idle_timeout: null,
    max_lifetime: null,
    fetch_types: false,
    onnotice: () => {}, // "schema drizzle already exists, skipping"
    onclose: () => {
      lost = true;
    },
    // Migrations may rewrite large tables, and waiting for another replica's migrations is expected.
    connection: { application_name: 'aviary-migrate', statement_timeout: 0, lock_timeout: 0 },
  });
  try {
    await sql.unsafe(`SELECT pg_advisory_lock(${ADVISORY_LOCK_CLASS}, ${ADVISORY_LOCKS.migrate})`);
    await drizzleMigrate(drizzle({ client: sql }), { migrationsFolder: POSTGRES_MIGRATIONS_FOLDER });
    // With one connection in the pool, a reconnect mid-way would have run the rest without the lock: refuse to boot.
    if (lost) throw new DatabaseUnavailableError('the connection holding the migration lock was lost; retry');
    await sql.unsafe(`SELECT pg_advisory_unlock(${ADVISORY_LOCK_CLASS}, ${ADVISORY_LOCKS.migrate})`);
  } catch (err) {
    throw unavailable(err);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Opens the PostgreSQL database at `url` behind the store port, after applying pending migrations (unless `migrate: false`). */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<PostgresPort> {
  if (options.migrate !== false) await migratePostgres(url, options);
  return new PostgresPort(url, options);
}

/** A database URL with its password hidden, for messages and logs. */
export function hidePassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(an unparseable URL)';
  }
}
