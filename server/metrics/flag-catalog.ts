/**
 * Which flags and variants exist in each environment, for screening metrics reports: SDK keys (client-side ones are
 * public) may report only for flags their environment serves and variants those flags have (CONTRACT §16). One query
 * per environment, cached until the environment's next committed change (a flag created, archived, deleted or given
 * new variants reaches its SDKs as a change, like everything else), so screening a report row is two map lookups.
 */
import type Database from 'better-sqlite3';
import type { ChangeFeed } from '../storage/change-feed.js';

/** Flag key → its variant keys, for one environment. */
export type EnvironmentCatalog = ReadonlyMap<string, ReadonlySet<string>>;

export class FlagCatalog {
  private readonly byEnv = new Map<string, EnvironmentCatalog>();
  private readonly stmt;
  private readonly unsubscribe: () => void;

  constructor(sqlite: Database.Database, feed: ChangeFeed) {
    // What the snapshot serves (server/storage/snapshot.ts): flags with a state in the environment, not archived.
    this.stmt = sqlite.prepare<[string], { key: string; variants: string }>(
      'SELECT f.key, f.variants FROM flags f JOIN flag_states s ON s.flag = f.key WHERE s.environment = ? AND f.archived = 0',
    );
    const forget = ({ environment }: { environment: string }) => this.byEnv.delete(environment);
    feed.on('change', forget);
    feed.on('environment.created', forget);
    this.unsubscribe = () => {
      feed.off('change', forget);
      feed.off('environment.created', forget);
    };
  }

  /** The flags of `environment` (empty when it does not exist). */
  get(environment: string): EnvironmentCatalog {
    let cat = this.byEnv.get(environment);
    if (cat) return cat;
    const map = new Map<string, ReadonlySet<string>>();
    for (const row of this.stmt.all(environment)) {
      let keys: string[] = [];
      try {
        keys = (JSON.parse(row.variants) as Array<{ key: string }>).map((v) => v.key);
      } catch {
        // A row the flag store wrote is valid JSON; an unreadable one simply has no variants to report.
      }
      map.set(row.key, new Set(keys));
    }
    this.byEnv.set(environment, (cat = map));
    return cat;
  }

  close(): void {
    this.unsubscribe();
    this.byEnv.clear();
  }
}
