/**
 * Reading what SDKs see: one environment's snapshot, one flag's config, and the change log since a version.
 * The writer reads through these inside its transaction; replicas read whole snapshots at boot and on a resync
 * (live-state.ts keeps them in memory after that).
 */
import type { Sql, StorePort } from './port.js';
import type * as Rows from './rows.js';
import type { EnvironmentSnapshot, FlagConfig, FlagState, Segment } from '@aviary/sdk/core';
import type { Change, Delta } from '@aviary/sdk/protocol';
import type { StoredFlagState } from './schema.js';

/** A flag's definition joined with its state in one environment. */
type FlagRow = Pick<Rows.FlagRow, 'key' | 'kind' | 'variants' | 'description' | 'tags'> & Pick<Rows.FlagStateRow, 'state' | 'version'>;

type SegmentRow = Pick<Rows.SegmentRow, 'key' | 'description' | 'included' | 'excluded' | 'rules'>;

const FLAG_COLUMNS = 'f.key, f.kind, f.variants, f.description, f.tags, s.state, s.version';
const FLAG_SQL = `SELECT ${FLAG_COLUMNS} FROM flags f JOIN flag_states s ON s.flag = f.key
  WHERE s.environment = ? AND f.key = ? AND NOT f.archived`;
const FLAGS_SQL = `SELECT ${FLAG_COLUMNS} FROM flags f JOIN flag_states s ON s.flag = f.key
  WHERE s.environment = ? AND NOT f.archived ORDER BY f.key`;
const SEGMENT_SQL = 'SELECT key, description, included, excluded, rules FROM segments WHERE key = ?';
const SEGMENTS_SQL = 'SELECT key, description, included, excluded, rules FROM segments ORDER BY key';
const VERSION_SQL = 'SELECT version FROM environments WHERE key = ?';

/** Combines a stored state and its version column into the wire FlagState. */
export function toFlagState(state: StoredFlagState, version: number): FlagState {
  return {
    enabled: state.enabled,
    offVariant: state.offVariant,
    ...(state.prerequisites !== undefined && state.prerequisites.length > 0 ? { prerequisites: state.prerequisites } : {}),
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
    state: toFlagState(JSON.parse(row.state) as StoredFlagState, Number(row.version)),
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
export async function readFlagConfig(sql: Sql, environment: string, key: string): Promise<FlagConfig | null> {
  const row = await sql.get<FlagRow>(FLAG_SQL, [environment, key]);
  return row ? flagFromRow(row) : null;
}

/** One segment, or null. */
export async function readSegment(sql: Sql, key: string): Promise<Segment | null> {
  const row = await sql.get<SegmentRow>(SEGMENT_SQL, [key]);
  return row ? segmentFromRow(row) : null;
}

/** All segments. */
export async function readSegments(sql: Sql): Promise<Segment[]> {
  return (await sql.all<SegmentRow>(SEGMENTS_SQL)).map(segmentFromRow);
}

/** The environment's current version, or null when the environment does not exist. */
export async function readEnvironmentVersion(sql: Sql, environment: string): Promise<number | null> {
  const row = await sql.get<{ version: number }>(VERSION_SQL, [environment]);
  return row ? Number(row.version) : null;
}

/**
 * The environment's snapshot (non-archived flags with their state there, all segments, the version), read in one
 * read-only transaction so the version matches the data, with the newest `recent` change-log deltas (oldest first,
 * contiguous up to the version) so SDKs can resume from a version they had. Null when the environment does not exist.
 */
export function readSnapshot(store: StorePort, environment: string, recent = 0): Promise<{ snapshot: EnvironmentSnapshot; deltas: Delta[] } | null> {
  return store.transaction(
    async (tx) => {
      const version = await readEnvironmentVersion(tx, environment);
      if (version === null) return null;
      const flags = (await tx.all<FlagRow>(FLAGS_SQL, [environment])).map(flagFromRow);
      const segments = await readSegments(tx);
      const rows =
        recent > 0
          ? await tx.all<{ version: number; changes: string }>(
              'SELECT version, changes FROM change_log WHERE environment = ? AND version > ? AND version <= ? ORDER BY version',
              [environment, version - recent, version],
            )
          : [];
      // Only a contiguous run ending at the version can serve resumes.
      let deltas = rows.map((r) => ({ version: Number(r.version), changes: JSON.parse(r.changes) as Change[] }));
      for (let i = deltas.length - 1; i > 0; i--) {
        if (deltas[i - 1]!.version !== deltas[i]!.version - 1) {
          deltas = deltas.slice(i);
          break;
        }
      }
      if (deltas.length && deltas[deltas.length - 1]!.version !== version) deltas = [];
      return { snapshot: { environment, version, flags, segments }, deltas };
    },
    { readOnly: true },
  );
}

/** The change-log deltas of `environment` after `version`, in order (what a replica reads when it follows the log). */
export async function readChangeLog(sql: Sql, environment: string, after: number, limit = 1000): Promise<Delta[]> {
  const rows = await sql.all<{ version: number; changes: string }>(
    'SELECT version, changes FROM change_log WHERE environment = ? AND version > ? ORDER BY version LIMIT ?',
    [environment, after, limit],
  );
  return rows.map((r) => ({ version: Number(r.version), changes: JSON.parse(r.changes) as Change[] }));
}
