/**
 * Reading what SDKs see: one environment's snapshot, one flag's config, and the change log since a version.
 * Raw prepared statements: these run on every SDK poll and inside every write transaction.
 */
import type Database from 'better-sqlite3';
import type { EnvironmentSnapshot, FlagConfig, FlagDefinition, FlagState, Segment } from '@aviary/sdk/core';
import type { Change, Delta } from '@aviary/sdk/protocol';
import type { StoredFlagState } from './schema.js';

interface FlagRow {
  key: string;
  kind: FlagDefinition['kind'];
  variants: string;
  description: string;
  tags: string;
  state: string;
  version: number;
}

interface SegmentRow {
  key: string;
  description: string;
  included: string;
  excluded: string;
  rules: string;
}

const FLAG_COLUMNS = 'f.key, f.kind, f.variants, f.description, f.tags, s.state, s.version';

const cache = new WeakMap<Database.Database, ReturnType<typeof prepare>>();

function prepare(sqlite: Database.Database) {
  return {
    flag: sqlite.prepare<[string, string], FlagRow>(
      `SELECT ${FLAG_COLUMNS} FROM flags f JOIN flag_states s ON s.flag = f.key
       WHERE s.environment = ? AND f.key = ? AND f.archived = 0`,
    ),
    flags: sqlite.prepare<[string], FlagRow>(
      `SELECT ${FLAG_COLUMNS} FROM flags f JOIN flag_states s ON s.flag = f.key
       WHERE s.environment = ? AND f.archived = 0 ORDER BY f.key`,
    ),
    segment: sqlite.prepare<[string], SegmentRow>('SELECT key, description, included, excluded, rules FROM segments WHERE key = ?'),
    segments: sqlite.prepare<[], SegmentRow>('SELECT key, description, included, excluded, rules FROM segments ORDER BY key'),
    envVersion: sqlite.prepare<[string], { version: number }>('SELECT version FROM environments WHERE key = ?'),
    changes: sqlite.prepare<[string, number], { version: number; changes: string }>(
      'SELECT version, changes FROM change_log WHERE environment = ? AND version > ? ORDER BY version',
    ),
  };
}

function stmts(sqlite: Database.Database) {
  let s = cache.get(sqlite);
  if (!s) cache.set(sqlite, (s = prepare(sqlite)));
  return s;
}

/** Combines a stored state and its version column into the wire FlagState. */
export function toFlagState(state: StoredFlagState, version: number): FlagState {
  return {
    enabled: state.enabled,
    offVariant: state.offVariant,
    targets: state.targets,
    rules: state.rules,
    fallthrough: state.fallthrough,
    version,
  };
}

function flagFromRow(row: FlagRow): FlagConfig {
  return {
    key: row.key,
    kind: row.kind,
    variants: JSON.parse(row.variants) as FlagConfig['variants'],
    ...(row.description ? { description: row.description } : {}),
    tags: JSON.parse(row.tags) as string[],
    state: toFlagState(JSON.parse(row.state) as StoredFlagState, row.version),
  };
}

function segmentFromRow(row: SegmentRow): Segment {
  return {
    key: row.key,
    ...(row.description ? { description: row.description } : {}),
    included: JSON.parse(row.included) as string[],
    excluded: JSON.parse(row.excluded) as string[],
    rules: JSON.parse(row.rules) as Segment['rules'],
  };
}

/** One flag as SDKs of `environment` see it, or null when it does not exist there or is archived. */
export function readFlagConfig(sqlite: Database.Database, environment: string, key: string): FlagConfig | null {
  const row = stmts(sqlite).flag.get(environment, key);
  return row ? flagFromRow(row) : null;
}

/** One segment, or null. */
export function readSegment(sqlite: Database.Database, key: string): Segment | null {
  const row = stmts(sqlite).segment.get(key);
  return row ? segmentFromRow(row) : null;
}

/** All segments. */
export function readSegments(sqlite: Database.Database): Segment[] {
  return stmts(sqlite).segments.all().map(segmentFromRow);
}

/** The environment's current version, or null when the environment does not exist. */
export function readEnvironmentVersion(sqlite: Database.Database, environment: string): number | null {
  return stmts(sqlite).envVersion.get(environment)?.version ?? null;
}

/**
 * The environment's snapshot (non-archived flags with their state there, all segments, the version), read in one
 * transaction so the version matches the data. Null when the environment does not exist.
 */
export function readSnapshot(sqlite: Database.Database, environment: string): EnvironmentSnapshot | null {
  const s = stmts(sqlite);
  const read = sqlite.transaction((): EnvironmentSnapshot | null => {
    const v = s.envVersion.get(environment);
    if (!v) return null;
    return { environment, version: v.version, flags: s.flags.all(environment).map(flagFromRow), segments: s.segments.all().map(segmentFromRow) };
  });
  return sqlite.inTransaction ? read() : read.deferred();
}

/**
 * The deltas after `version`, in order; `[]` when the caller is current; null when the change log no longer reaches
 * back that far (or `version` is ahead of the server, e.g. after a restore from backup): the caller needs a snapshot.
 */
export function readChangesSince(sqlite: Database.Database, environment: string, version: number): Delta[] | null {
  const s = stmts(sqlite);
  const read = sqlite.transaction((): Delta[] | null => {
    const current = s.envVersion.get(environment)?.version;
    if (current === undefined || !Number.isInteger(version) || version < 0 || version > current) return null;
    if (version === current) return [];
    const rows = s.changes.all(environment, version);
    if (rows[0]?.version !== version + 1 || rows.length !== current - version) return null;
    return rows.map((r) => ({ version: r.version, changes: JSON.parse(r.changes) as Change[] }));
  });
  return sqlite.inTransaction ? read() : read.deferred();
}
