/**
 * One environment held in memory, as the server's live state (live-state.ts) and a relay's state
 * (server/relay/relay-state.ts) both hold it: its flags, segments and stream keys at `version`, the recent deltas its
 * SDKs resume from, and the snapshot object handed out until the next change. The two differ in where changes come
 * from (the change log, upstream's stream) and what they do around them; what a change does to the held state is here.
 */
import type { EnvironmentSnapshot, FlagConfig, Segment, StreamKey } from '@aviary/sdk/core';
import type { Delta } from '@aviary/sdk/protocol';

export interface HeldEnvironment {
  environment: string;
  version: number;
  flags: Map<string, FlagConfig>;
  segments: Map<string, Segment>;
  /** The keys relays check (SDK keys of the environment, relay tokens covering it), by token id: relay audience only. */
  keys: Map<string, StreamKey>;
  /** Contiguous recent deltas, oldest first, ending at `version`. */
  deltas: Delta[];
  /** The snapshot object handed out until the next change (built on demand). */
  snapshot: EnvironmentSnapshot | null;
}

/** An environment held from a snapshot, its keys and the deltas that end at its version. */
export function holdSnapshot(snapshot: EnvironmentSnapshot, keys: Iterable<StreamKey>, deltas: Delta[]): HeldEnvironment {
  return {
    environment: snapshot.environment,
    version: snapshot.version,
    flags: new Map(snapshot.flags.map((f) => [f.key, f])),
    segments: new Map(snapshot.segments.map((s) => [s.key, s])),
    keys: new Map([...keys].map((k) => [k.id, k])),
    deltas,
    snapshot,
  };
}

const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** The environment's snapshot (flags and segments sorted by key), built once per version. */
export function snapshotOf(e: HeldEnvironment): EnvironmentSnapshot {
  e.snapshot ??= {
    environment: e.environment,
    version: e.version,
    flags: [...e.flags.values()].sort(byKey),
    segments: [...e.segments.values()].sort(byKey),
  };
  return e.snapshot;
}

/**
 * The deltas after `version`, in order; `[]` when the caller is current; null when they are no longer held (or the
 * version is ahead): the caller needs a snapshot.
 */
export function deltasSince(e: HeldEnvironment, version: number): Delta[] | null {
  if (!Number.isInteger(version) || version < 0 || version > e.version) return null;
  if (version === e.version) return [];
  const first = e.deltas[0];
  if (!first || first.version > version + 1) return null;
  return e.deltas.slice(version + 1 - first.version);
}

/**
 * Applies a delta the caller has checked follows `e`, keeping at most `keep` deltas; answers the keys it added or
 * replaced and the ids of those it removed.
 */
export function applyDelta(e: HeldEnvironment, delta: Delta, keep: number): { upserted: StreamKey[]; removed: string[] } {
  const upserted: StreamKey[] = [];
  const removed: string[] = [];
  for (const change of delta.changes) {
    switch (change.type) {
      case 'flag.upsert':
        e.flags.set(change.flag.key, change.flag);
        break;
      case 'flag.delete':
        e.flags.delete(change.key);
        break;
      case 'segment.upsert':
        e.segments.set(change.segment.key, change.segment);
        break;
      case 'segment.delete':
        e.segments.delete(change.key);
        break;
      case 'key.upsert':
        e.keys.set(change.key.id, change.key);
        upserted.push(change.key);
        break;
      case 'key.delete':
        e.keys.delete(change.id);
        removed.push(change.id);
        break;
    }
  }
  e.version = delta.version;
  e.snapshot = null;
  e.deltas.push(delta);
  if (e.deltas.length > keep) e.deltas.splice(0, e.deltas.length - keep);
  return { upserted, removed };
}
