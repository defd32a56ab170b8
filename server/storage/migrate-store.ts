/**
 * `aviary migrate-store`: moves a SQLite installation to PostgreSQL in one go (docs/operations.md, "Moving to
 * PostgreSQL").
 *
 * - The source must be stopped: its lock (db-lock.ts) is taken for the whole run, so a server holding the file is
 *   refused and none can start on it meanwhile. Copying a live server from a snapshot would lose every write made after
 *   the snapshot (or leave it on the old server only); a move is a cutover, so the server stops first. A file whose last
 *   server did not stop cleanly (or that `aviary restore` just put in place) is refused too: its next boot must first
 *   move its versions forward (server-state.ts), and a PostgreSQL boot never does that.
 * - The file is read read-only, in one read transaction. The target is migrated (openPostgres) and must be empty: a
 *   freshly migrated database has no row in any Aviary table, and a target that has any is refused, with no override.
 * - Every table of schema.ts is copied, parents before children (foreign keys), in ONE PostgreSQL transaction under the
 *   writers' lock: ids, versions, times and JSON text as they are, 0/1 as booleans. The audit log's identity is moved
 *   past the largest id. Row counts and environment versions are checked inside the transaction, so any failure rolls
 *   everything back and the target is left as it was (apart from the schema, which any server boot would create).
 */
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { is } from 'drizzle-orm';
import { getTableConfig as pgTableConfig, PgTable } from 'drizzle-orm/pg-core';
import { getTableConfig as sqliteTableConfig, SQLiteTable } from 'drizzle-orm/sqlite-core';
import { DatabaseLockedError, lockDatabase } from './db-lock.js';
import type { SqlValue, Tx } from './port.js';
import { hidePassword, openPostgres } from './postgres-port.js';
import * as postgresSchema from './schema-postgres.js';
import * as sqliteSchema from './schema.js';

/** `server_state` keys that only mean something to the server owning a SQLite file (server-state.ts, backup.ts). */
const SQLITE_ONLY_STATE = new Set(['running', 'restored_from']);

/** Rows per INSERT (and at most this many bound values), well under PostgreSQL's 65,535 parameters. */
const BATCH_ROWS = 500;
const BATCH_VALUES = 20_000;

/** What a migration did, for the CLI to print. */
export interface MigrateStoreResult {
  /** The SQLite file. */
  from: string;
  /** The PostgreSQL URL, password hidden. */
  to: string;
  /** Rows copied per table, in copy order (equal on both sides). */
  tables: Array<{ table: string; rows: number }>;
  /** `server_state` keys left behind (SQLite-only markers). */
  skipped: string[];
  /** Environment versions (equal on both sides). */
  environments: Record<string, number>;
  /** The id the next audit entry gets. */
  nextAuditId: number;
  /** Wall time of the whole run, in ms. */
  ms: number;
}

/** A refusal or failure; `table` names the table it happened in, when there is one. Nothing was changed on the target. */
export class MigrateStoreError extends Error {
  constructor(
    message: string,
    readonly table: string | null = null,
  ) {
    super(message);
    this.name = 'MigrateStoreError';
  }
}

type Kind = 'text' | 'integer' | 'real' | 'boolean';

interface TablePlan {
  name: string;
  columns: Array<{ name: string; kind: Kind }>;
  /** Tables its foreign keys point at. */
  parents: string[];
}

const PG_KINDS: Record<string, Kind> = { PgText: 'text', PgBigInt53: 'integer', PgDoublePrecision: 'real', PgBoolean: 'boolean' };

/** schema.ts's tables, each with its columns typed as PostgreSQL stores them, parents before children. */
function tablePlans(): TablePlan[] {
  const pg = new Map(
    Object.values(postgresSchema)
      .filter((t) => is(t, PgTable))
      .map((t) => [pgTableConfig(t).name, pgTableConfig(t)] as const),
  );
  const plans = Object.values(sqliteSchema)
    .filter((t) => is(t, SQLiteTable))
    .map((t): TablePlan => {
      const config = sqliteTableConfig(t);
      const target = pg.get(config.name);
      if (!target) throw new MigrateStoreError(`schema-postgres.ts has no table ${config.name}`, config.name);
      const columns = config.columns.map((c) => {
        const kind = PG_KINDS[target.columns.find((p) => p.name === c.name)?.columnType ?? ''];
        if (!kind) throw new MigrateStoreError(`schema-postgres.ts has no column ${config.name}.${c.name} of a known type`, config.name);
        return { name: c.name, kind };
      });
      const parents = config.foreignKeys.map((fk) => sqliteTableConfig(fk.reference().foreignTable).name).filter((p) => p !== config.name);
      return { name: config.name, columns, parents };
    })
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const ordered: TablePlan[] = [];
  const placed = new Set<string>();
  while (ordered.length < plans.length) {
    const ready = plans.filter((p) => !placed.has(p.name) && p.parents.every((x) => placed.has(x)));
    if (ready.length === 0) throw new MigrateStoreError('the schema has a cycle of foreign keys');
    for (const p of ready) placed.add(p.name);
    ordered.push(...ready);
  }
  return ordered;
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** A SQLite value as the PostgreSQL column of `kind` takes it; anything Aviary never writes there is refused. */
function convert(value: unknown, table: string, column: string, kind: Kind): SqlValue {
  if (value === null) return null;
  const where = `${table}.${column}`;
  switch (kind) {
    case 'text':
      if (typeof value === 'string') return value;
      break;
    case 'boolean':
      if (value === 0n || value === 1n) return value === 1n;
      break;
    case 'integer':
      if (typeof value === 'bigint') {
        if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
          throw new MigrateStoreError(`${where} holds ${value}, beyond what Aviary reads as a number`, table);
        }
        return Number(value);
      }
      break;
    case 'real':
      if (typeof value === 'number') return value;
      if (typeof value === 'bigint') return Number(value);
      break;
  }
  const shown =
    typeof value === 'bigint' || typeof value === 'number'
      ? String(value)
      : typeof value === 'string'
        ? JSON.stringify(value.slice(0, 40))
        : typeof value;
  throw new MigrateStoreError(`${where} holds ${shown}, which is not a valid ${kind} for that column`, table);
}

/** Checks that `source` has every table and column of schema.ts (a file from an older Aviary lacks some). */
function checkSource(source: Database.Database, from: string, plans: TablePlan[]): void {
  for (const plan of plans) {
    const info = source.pragma(`table_info(${quote(plan.name)})`) as Array<{ name: string }>;
    const have = new Set(info.map((c) => c.name));
    const column = plan.columns.find((c) => !have.has(c.name));
    if (!column) continue;
    throw new MigrateStoreError(
      `${from} has no ${have.size === 0 ? `table ${plan.name}` : `column ${plan.name}.${column.name}`}: it is not an Aviary database, or an older ` +
        'Aviary wrote it. Start this version of the server on it once (it migrates at boot), stop it, and run migrate-store again.',
      plan.name,
    );
  }
  const markers = new Set(source.prepare<[], string>("SELECT key FROM server_state WHERE key IN ('running', 'restored_from')").pluck().all());
  if (markers.has('running')) {
    throw new MigrateStoreError(
      `${from} was not stopped cleanly${markers.has('restored_from') ? ' (it was restored from a backup)' : ''}: start the server on it once ` +
        'and stop it with SIGTERM (its boot moves every version forward so SDKs resync, audited as server.recover), then run migrate-store again.',
      'server_state',
    );
  }
}

/** Copies one table inside `tx`; returns the rows copied and the `server_state` keys left behind. */
async function copyTable(source: Database.Database, tx: Tx, plan: TablePlan): Promise<{ rows: number; skipped: string[] }> {
  const names = plan.columns.map((c) => quote(c.name)).join(', ');
  const select = source
    .prepare(`SELECT ${names} FROM ${quote(plan.name)}`)
    .raw(true)
    .safeIntegers(true);
  const perBatch = Math.max(1, Math.min(BATCH_ROWS, Math.floor(BATCH_VALUES / plan.columns.length)));
  const rowPlaceholders = `(${plan.columns.map(() => '?').join(', ')})`;
  const skipped: string[] = [];
  let rows = 0;
  let batch: SqlValue[][] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const text = `INSERT INTO ${quote(plan.name)} (${names}) VALUES ${batch.map(() => rowPlaceholders).join(', ')}`;
    rows += await tx.run(text, batch.flat());
    batch = [];
  };
  for (const row of select.iterate() as Iterable<unknown[]>) {
    if (plan.name === 'server_state' && SQLITE_ONLY_STATE.has(String(row[0]))) {
      skipped.push(String(row[0]));
      continue;
    }
    batch.push(plan.columns.map((c, i) => convert(row[i], plan.name, c.name, c.kind)));
    if (batch.length === perBatch) await flush();
  }
  await flush();
  return { rows, skipped };
}

const count = (n: unknown) => Number(n);

/**
 * Copies the stopped SQLite installation at `from` into the empty PostgreSQL database at `to` (see the file comment).
 * Throws {@link MigrateStoreError} (or the database's error) having changed nothing on the target.
 */
export async function migrateStore(from: string, to: string, options: { timeoutMs?: number } = {}): Promise<MigrateStoreResult> {
  const started = performance.now();
  const target = hidePassword(to);
  if (!existsSync(from)) throw new MigrateStoreError(`no SQLite database at ${from}`);
  const plans = tablePlans();
  let lock: ReturnType<typeof lockDatabase>;
  try {
    lock = lockDatabase(from);
  } catch (err) {
    if (!(err instanceof DatabaseLockedError)) throw err;
    const who = err.owner ? `process ${err.owner.pid} on ${err.owner.host} (running since ${err.owner.startedAt})` : 'another process';
    throw new MigrateStoreError(
      `${from} is in use by ${who}: stop that server first. migrate-store copies a stopped database, so that no write made after the copy is lost.`,
    );
  }
  try {
    const source = new Database(from, { readonly: true, fileMustExist: true });
    try {
      source.pragma('busy_timeout = 5000');
      checkSource(source, from, plans);
      // One read transaction: counts and rows come from the same snapshot of the file.
      source.exec('BEGIN');
      const expected = new Map(
        plans.map((p) => [
          p.name,
          count(
            source
              .prepare(`SELECT count(*) AS n FROM ${quote(p.name)}`)
              .pluck()
              .get(),
          ),
        ]),
      );
      const versions = Object.fromEntries(
        source
          .prepare<[], { key: string; version: number }>('SELECT key, version FROM environments ORDER BY key')
          .all()
          .map((r) => [r.key, r.version]),
      );

      let store: Awaited<ReturnType<typeof openPostgres>>;
      try {
        store = await openPostgres(to, { timeoutMs: options.timeoutMs ?? 300_000, max: 2 });
      } catch (err) {
        throw new MigrateStoreError(`cannot open (and migrate) PostgreSQL at ${target}: ${(err as Error).message}`);
      }
      try {
        // The writers' lock: a replica started on the target too early waits instead of interleaving.
        const copied = await store.transaction(
          async (tx) => {
            const occupied: string[] = [];
            for (const p of plans) {
              const n = count((await tx.get<{ n: unknown }>(`SELECT count(*) AS n FROM ${quote(p.name)}`))?.n);
              if (n > 0) occupied.push(`${p.name} (${n} row${n === 1 ? '' : 's'})`);
            }
            if (occupied.length > 0) {
              throw new MigrateStoreError(
                `the target ${target} already holds Aviary data: ${occupied.join(', ')}. migrate-store only copies into an empty database (a new one, ` +
                  'migrated or not); it never merges or overwrites.',
              );
            }
            const tables: MigrateStoreResult['tables'] = [];
            const skipped: string[] = [];
            for (const p of plans) {
              let result: { rows: number; skipped: string[] };
              try {
                result = await copyTable(source, tx, p);
              } catch (err) {
                if (err instanceof MigrateStoreError) throw err;
                throw new MigrateStoreError(`copying ${p.name} failed: ${(err as Error).message}`, p.name);
              }
              const want = (expected.get(p.name) ?? 0) - result.skipped.length;
              const have = count((await tx.get<{ n: unknown }>(`SELECT count(*) AS n FROM ${quote(p.name)}`))?.n);
              if (result.rows !== want || have !== want) {
                throw new MigrateStoreError(`${p.name}: ${want} rows to copy, ${result.rows} inserted, ${have} found in the target`, p.name);
              }
              tables.push({ table: p.name, rows: have });
              skipped.push(...result.skipped);
            }
            const copiedVersions = Object.fromEntries(
              (await tx.all<{ key: string; version: unknown }>('SELECT key, version FROM environments')).map((r) => [r.key, count(r.version)]),
            );
            const keys = new Set([...Object.keys(versions), ...Object.keys(copiedVersions)]);
            if ([...keys].some((k) => versions[k] !== copiedVersions[k])) {
              throw new MigrateStoreError(
                `environments: versions differ (SQLite ${JSON.stringify(versions)}, PostgreSQL ${JSON.stringify(copiedVersions)})`,
                'environments',
              );
            }
            // Copied rows kept their ids; the identity must hand out the next one, not 1.
            const maxId = (await tx.get<{ id: unknown }>('SELECT max(id) AS id FROM audit_log'))?.id;
            if (maxId !== null && maxId !== undefined) await tx.run("SELECT setval(pg_get_serial_sequence('audit_log', 'id'), ?)", [count(maxId)]);
            return { tables, skipped, nextAuditId: maxId === null || maxId === undefined ? 1 : count(maxId) + 1 };
          },
          { lock: 'write' },
        );
        return { from, to: target, ...copied, environments: versions, ms: Math.round(performance.now() - started) };
      } finally {
        await store.close();
      }
    } finally {
      if (source.inTransaction) source.exec('COMMIT');
      source.close();
    }
  } finally {
    lock.release();
  }
}
