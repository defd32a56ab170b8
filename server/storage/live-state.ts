/**
 * What every replica holds in memory: each environment's snapshot (its flags and segments at the newest version this
 * replica has applied) and the most recent deltas, so SDK snapshot reads, stream hydrations and resumes, and
 * server-side evaluation never wait for the database. It is loaded at boot and kept current by applying committed
 * changes in version order (the writer's own, and on PostgreSQL the other replicas' as the log follower reads them).
 */
import type { EnvironmentSnapshot, StreamKey } from '@aviary/sdk/core';
import type { Delta } from '@aviary/sdk/protocol';
import type { ChangeEvent } from './change-feed.js';
import { applyDelta, deltasSince, holdSnapshot, snapshotOf, type HeldEnvironment } from './held-environment.js';
import type { StorePort } from './port.js';
import { readSnapshot } from './snapshot.js';
import type { TokenRow } from './rows.js';
import { readsEnvironment, streamKeyOf, tokenActive } from '../auth/stream-keys.js';

export class LiveState {
  private readonly envs = new Map<string, HeldEnvironment>();

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
    this.envs.set(environment, holdSnapshot(read.snapshot, keys.values(), read.deltas));
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
    return e ? snapshotOf(e) : null;
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
    return e ? deltasSince(e, version) : null;
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
    applyDelta(e, event.delta, this.keep);
    return 'applied';
  }

  /** Forgets an environment (it was deleted). */
  forget(environment: string): void {
    this.envs.delete(environment);
  }
}
