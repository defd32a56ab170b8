/**
 * What every replica holds in memory: each environment's snapshot (its flags and segments at the newest version this
 * replica has applied) and the most recent deltas, so SDK snapshot reads, stream hydrations and resumes, and
 * server-side evaluation never wait for the database. It is loaded at boot and kept current by applying committed
 * changes in version order (the writer's own, and on PostgreSQL the other replicas' as the log follower reads them).
 */
import type { EnvironmentSnapshot, FlagConfig, Segment, StreamKey } from '@aviary/sdk/core';
import type { Delta } from '@aviary/sdk/protocol';
import type { ChangeEvent } from './change-feed.js';
import type { StorePort } from './port.js';
import { readSnapshot } from './snapshot.js';
import type { TokenRow } from './rows.js';
import { readsEnvironment, streamKeyOf, tokenActive } from '../auth/stream-keys.js';

interface LiveEnvironment {
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

export class LiveState {
  private readonly envs = new Map<string, LiveEnvironment>();

  constructor(
    private readonly store: StorePort,
    /** Deltas kept per environment for resumes (the change log's own limit). */
    private readonly keep: number,
  ) {}

  /** (Re)loads one environment from the database; false when it does not exist (then it is forgotten). */
  async load(environment: string): Promise<boolean> {
    const read = await readSnapshot(this.store, environment, this.keep);
    if (!read) {
      this.envs.delete(environment);
      return false;
    }
    const keys = new Map<string, StreamKey>();
    const now = Date.now();
    for (const row of await this.store.all<TokenRow>("SELECT * FROM tokens WHERE kind IN ('sdk', 'relay') AND revoked_at IS NULL")) {
      const key = streamKeyOf(row);
      if (key && tokenActive(row, now) && readsEnvironment(row, environment)) keys.set(key.id, key);
    }
    const current = this.envs.get(environment);
    // A load racing with applied changes must not move an environment backwards.
    if (current && current.version > read.snapshot.version) return true;
    this.envs.set(environment, {
      environment,
      version: read.snapshot.version,
      flags: new Map(read.snapshot.flags.map((f) => [f.key, f])),
      segments: new Map(read.snapshot.segments.map((s) => [s.key, s])),
      keys,
      deltas: read.deltas,
      snapshot: read.snapshot,
    });
    return true;
  }

  /** The environments held. */
  environments(): string[] {
    return [...this.envs.keys()];
  }

  has(environment: string): boolean {
    return this.envs.has(environment);
  }

  get(environment: string): EnvironmentSnapshot | null {
    const e = this.envs.get(environment);
    if (!e) return null;
    if (!e.snapshot) {
      const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
      e.snapshot = {
        environment,
        version: e.version,
        flags: [...e.flags.values()].sort(byKey),
        segments: [...e.segments.values()].sort(byKey),
      };
    }
    return e.snapshot;
  }

  /** The keys relays check for this environment (relay audience only; never in SDK snapshots). */
  keys(environment: string): StreamKey[] {
    const e = this.envs.get(environment);
    return e ? [...e.keys.values()] : [];
  }

  version(environment: string): number | null {
    return this.envs.get(environment)?.version ?? null;
  }

  /**
   * The deltas after `version`, in order; `[]` when the caller is current; null when they are no longer held (or the
   * version is ahead of this replica): the caller needs a snapshot.
   */
  changesSince(environment: string, version: number): Delta[] | null {
    const e = this.envs.get(environment);
    if (!e || !Number.isInteger(version) || version < 0 || version > e.version) return null;
    if (version === e.version) return [];
    const first = e.deltas[0];
    if (!first || first.version > version + 1) return null;
    return e.deltas.slice(version + 1 - first.version);
  }

  /**
   * Applies a committed change if it is the environment's next version ('applied'); a version already held is
   * 'old' (nothing to do); anything else is a 'gap' (nothing changed: the caller reads the log or reloads).
   */
  apply(event: ChangeEvent): 'applied' | 'old' | 'gap' {
    const e = this.envs.get(event.environment);
    if (!e) return 'gap';
    if (event.delta.version <= e.version) return 'old';
    if (event.delta.version !== e.version + 1) return 'gap';
    for (const change of event.delta.changes) {
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
          break;
        case 'key.delete':
          e.keys.delete(change.id);
          break;
      }
    }
    e.version = event.delta.version;
    e.snapshot = null;
    e.deltas.push(event.delta);
    if (e.deltas.length > this.keep) e.deltas.splice(0, e.deltas.length - this.keep);
    return 'applied';
  }

  /** Forgets an environment (it was deleted). */
  forget(environment: string): void {
    this.envs.delete(environment);
  }
}
