/**
 * The SQLite and PostgreSQL schemas in lockstep, checked by the compiler (`npm run typecheck`); nothing here runs.
 *
 * Both schema modules must export the same tables, and each table's row types (`$inferSelect`, `$inferInsert`) must be
 * identical: same columns, same TypeScript types, same nullability, same optional-on-insert columns (defaults). A
 * column added to one schema only, or typed differently, fails the typecheck here and names the table.
 * (SQL-level details the types cannot see, such as names and NOT NULL, are compared by introspection in
 * test/storage/port.test.ts.)
 */
import type * as pg from './schema-postgres.js';
import type * as sqlite from './schema.js';

type Sqlite = typeof sqlite;
type Pg = typeof pg;

/** Flattens intersections so that two equal object types compare equal whatever way drizzle composed them. */
type Flat<T> = { [K in keyof T]: T[K] } & {};

/** Exact type equality (optional and readonly modifiers included), not mutual assignability. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** Fails to compile unless `T` is `never`; the error message lists what `T` is (the names of the mismatches). */
type ExpectNone<T extends never> = T;

type Tables = keyof Sqlite & keyof Pg;

/** Tables exported by one schema only. */
export type TablesMissingOnEitherSide = ExpectNone<Exclude<keyof Sqlite, keyof Pg> | Exclude<keyof Pg, keyof Sqlite>>;

type SelectMismatch = {
  [K in Tables]: Equal<Flat<Sqlite[K]['$inferSelect']>, Flat<Pg[K]['$inferSelect']>> extends true ? never : K;
}[Tables];

type InsertMismatch = {
  [K in Tables]: Equal<Flat<Sqlite[K]['$inferInsert']>, Flat<Pg[K]['$inferInsert']>> extends true ? never : K;
}[Tables];

/** Tables whose selected rows differ between the engines. */
export type TablesWithDifferentRows = ExpectNone<SelectMismatch>;
/** Tables whose insert rows differ between the engines. */
export type TablesWithDifferentInserts = ExpectNone<InsertMismatch>;
