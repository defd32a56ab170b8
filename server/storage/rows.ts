/**
 * Row types of the raw SQL the stores write once for both engines, derived from the drizzle schema (schema.ts; the
 * PostgreSQL schema is checked equal to it by schema-parity.ts), so a column's name, type and nullability are written
 * only there. A row is keyed by SQL column name (what `SELECT *` answers) and holds what the database hands back:
 * JSON columns as their text, booleans as 0/1 (SQLite) or true/false (PostgreSQL: read them with `bool()`).
 */
import type { Table } from 'drizzle-orm';
import type * as schema from './schema.js';

type Stored<C> = C extends { _: { dataType: 'json' } }
  ? string
  : C extends { _: { dataType: 'boolean' } }
    ? number | boolean
    : C extends { _: { data: infer D } }
      ? D
      : never;

type Nullable<C, T> = C extends { _: { notNull: true } } ? T : T | null;

type Columns<T extends Table> = T['_']['columns'];

/** The row `SELECT *` answers for table `T`. */
export type RowOf<T extends Table> = {
  [K in keyof Columns<T> as Columns<T>[K]['_']['name']]: Nullable<Columns<T>[K], Stored<Columns<T>[K]>>;
};

export type FlagRow = RowOf<typeof schema.flags>;
export type FlagStateRow = RowOf<typeof schema.flagStates>;
export type SegmentRow = RowOf<typeof schema.segments>;
export type TokenRow = RowOf<typeof schema.tokens>;
export type EnvironmentRow = RowOf<typeof schema.environments>;
export type AuditRow = RowOf<typeof schema.auditLog>;
export type ChangeLogRow = RowOf<typeof schema.changeLog>;
