/**
 * Statements over many rows at once, in the SQL both engines accept (server/storage/port.ts): a multi-row VALUES
 * list for inserts and upserts, and an OR of key equalities to read rows by their primary key. On PostgreSQL every
 * statement is a round trip, so a batch's hundreds of rows go in a few statements instead of one each.
 *
 * Lists are cut into chunks of at most `CHUNK_ROWS` rows, which keeps every statement well under both engines'
 * placeholder limits and the number of distinct statement texts (each prepared once per connection) bounded.
 */
import type { SqlValue } from '../storage/port.js';

/** Rows per statement. */
export const CHUNK_ROWS = 100;

const texts = new Map<string, string>();

function cached(key: string, build: () => string): string {
  let text = texts.get(key);
  if (text === undefined) texts.set(key, (text = build()));
  return text;
}

/** `(?, ?, ?), (?, ?, ?)`: `rows` rows of `width` placeholders. */
export function valuesList(width: number, rows: number): string {
  return cached(`v:${width}:${rows}`, () => {
    const row = `(${Array.from({ length: width }, () => '?').join(', ')})`;
    return Array.from({ length: rows }, () => row).join(', ');
  });
}

/**
 * `(a = ? AND b = ?) OR (a = ? AND b = ?)`: matches `rows` keys of `columns`. (Both engines accept a row-value IN
 * over a subquery, but only PostgreSQL a list of row values, and a VALUES list leaves PostgreSQL to guess the
 * placeholders' types; an equality against the column gives them the column's.)
 */
export function keysWhere(columns: readonly string[], rows: number): string {
  return cached(`k:${columns.join(',')}:${rows}`, () => {
    const one = `(${columns.map((c) => `${c} = ?`).join(' AND ')})`;
    return Array.from({ length: rows }, () => one).join(' OR ');
  });
}

/** `items` in chunks of at most `CHUNK_ROWS`. */
export function chunked<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK_ROWS) out.push(items.slice(i, i + CHUNK_ROWS));
  return out;
}

/** The parameters of `rows`, flattened in order. */
export function flat(rows: readonly (readonly SqlValue[])[]): SqlValue[] {
  const out: SqlValue[] = [];
  for (const r of rows) for (const v of r) out.push(v);
  return out;
}
