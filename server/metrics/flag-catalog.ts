/**
 * Which flags and variants exist in each environment, for screening metrics reports: SDK keys (client-side ones are
 * public) may report only for flags their environment serves and variants those flags have (CONTRACT §16).
 *
 * Read from this replica's live state (`app.snapshots`, server/storage/live-state.ts), not the database: exactly what
 * the environment's SDKs are served (flags with a state there, archived flags absent), current as soon as a change
 * reaches this replica. A catalog is built once per snapshot object (the live state hands out the same object until
 * the environment's next change), so screening a report row is two map lookups.
 */
import type { EnvironmentSnapshot } from '@aviary/sdk/core';

/** Flag key → its variant keys, for one environment. */
export type EnvironmentCatalog = ReadonlyMap<string, ReadonlySet<string>>;

/** Where the catalog reads environments from (`app.snapshots`). */
export interface SnapshotSource {
  get(environment: string): EnvironmentSnapshot | null;
}

const EMPTY: EnvironmentCatalog = new Map();

export class FlagCatalog {
  private readonly bySnapshot = new WeakMap<EnvironmentSnapshot, EnvironmentCatalog>();

  constructor(private readonly snapshots: SnapshotSource) {}

  /** The flags of `environment` (empty when it does not exist). */
  get(environment: string): EnvironmentCatalog {
    const snapshot = this.snapshots.get(environment);
    if (!snapshot) return EMPTY;
    let cat = this.bySnapshot.get(snapshot);
    if (!cat) {
      cat = new Map(snapshot.flags.map((f) => [f.key, new Set(f.variants.map((v) => v.key))]));
      this.bySnapshot.set(snapshot, cat);
    }
    return cat;
  }

  /** Nothing to release (kept for symmetry with the other runtimes' close). */
  close(): void {}
}
