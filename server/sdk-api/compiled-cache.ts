/**
 * One CompiledEnvironment per environment for server-side evaluation, kept current from the change feed: a delta
 * that follows the cached version is applied incrementally (only what changed is recompiled); anything else (a
 * gap) drops the entry and the next request recompiles from a fresh snapshot.
 */
import { applyChanges, compileEnvironment, lazyDfa, type CompiledEnvironment } from '@aviary/sdk/core';
import type { ChangeFeed } from '../storage/change-feed.js';
import type { Snapshots } from '../app.js';

export class CompiledEnvironmentCache {
  private readonly cache = new Map<string, CompiledEnvironment>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly snapshots: Snapshots,
    feed: ChangeFeed,
  ) {
    const onChange = ({ environment, delta }: { environment: string; delta: { version: number; changes: Parameters<typeof applyChanges>[1] } }) => {
      const cached = this.cache.get(environment);
      if (!cached) return;
      if (delta.version === cached.version + 1) this.cache.set(environment, applyChanges(cached, delta.changes, delta.version));
      else this.cache.delete(environment);
    };
    const onReset = ({ environment }: { environment: string }) => void this.cache.delete(environment);
    feed.on('change', onChange);
    feed.on('environment.reset', onReset);
    this.unsubscribe = () => {
      feed.off('change', onChange);
      feed.off('environment.reset', onReset);
    };
  }

  /** The compiled environment, or null when it does not exist. */
  get(environment: string): CompiledEnvironment | null {
    const cached = this.cache.get(environment);
    if (cached) return cached;
    const snapshot = this.snapshots.get(environment);
    if (!snapshot) return null;
    const compiled = compileEnvironment(snapshot, { patternEngine: lazyDfa });
    this.cache.set(environment, compiled);
    return compiled;
  }

  close(): void {
    this.unsubscribe();
    this.cache.clear();
  }
}
