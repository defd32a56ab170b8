/** Environments: listing, creation (with a default state for every existing flag), the first-boot defaults. */
import type Database from 'better-sqlite3';
import type { FlagDefinition } from '@aviary/sdk/core';
import { defaultFlagState } from './core-api.js';
import { apiTime } from '../openapi/time.js';
import type { ChangeFeed } from './change-feed.js';
import type { StoredFlagState } from './schema.js';
import type { Actor, Writer } from './writer.js';

/** An environment as the API shows it. */
export interface EnvironmentInfo {
  key: string;
  name: string;
  /** Bumped by every change SDKs of this environment can see. */
  version: number;
  /** RFC 3339 (the API's form; stored as epoch ms). */
  createdAt: string;
}

interface EnvRow {
  key: string;
  name: string;
  version: number;
  created_at: number;
}

/** Environments every installation has after its first boot. */
export const DEFAULT_ENVIRONMENTS = [
  { key: 'development', name: 'Development' },
  { key: 'staging', name: 'Staging' },
  { key: 'production', name: 'Production' },
] as const;

const toInfo = (r: EnvRow): EnvironmentInfo => ({ key: r.key, name: r.name, version: r.version, createdAt: apiTime(r.created_at) });

export class EnvironmentStore {
  private readonly stmts;

  constructor(
    sqlite: Database.Database,
    private readonly writer: Writer,
    private readonly feed: ChangeFeed,
  ) {
    this.stmts = {
      all: sqlite.prepare<[], EnvRow>('SELECT key, name, version, created_at FROM environments ORDER BY created_at, rowid'),
      one: sqlite.prepare<[string], EnvRow>('SELECT key, name, version, created_at FROM environments WHERE key = ?'),
      insert: sqlite.prepare('INSERT INTO environments (key, name, version, created_at) VALUES (?, ?, 0, ?)'),
      flags: sqlite.prepare<[], { key: string; kind: FlagDefinition['kind']; variants: string }>('SELECT key, kind, variants FROM flags'),
      insertState: sqlite.prepare('INSERT INTO flag_states (environment, flag, state, version, updated_at) VALUES (?, ?, ?, 1, ?)'),
    };
  }

  list(): EnvironmentInfo[] {
    return this.stmts.all.all().map(toInfo);
  }

  get(key: string): EnvironmentInfo | null {
    const row = this.stmts.one.get(key);
    return row ? toInfo(row) : null;
  }

  /** Creates an environment; every existing flag gets its default (disabled) state there. Null if the key exists. */
  create(actor: Actor, input: { key: string; name: string }): EnvironmentInfo | null {
    const { value } = this.writer.write(actor, (w) => {
      if (this.stmts.one.get(input.key)) return null;
      this.stmts.insert.run(input.key, input.name, w.now);
      for (const f of this.stmts.flags.all()) {
        const def: FlagDefinition = { key: f.key, kind: f.kind, variants: JSON.parse(f.variants) as FlagDefinition['variants'] };
        const state: StoredFlagState = defaultFlagState(def);
        this.stmts.insertState.run(input.key, f.key, JSON.stringify(state), w.now);
      }
      const created = toInfo(this.stmts.one.get(input.key)!);
      w.audit({ action: 'environment.create', resourceType: 'environment', resourceKey: input.key, environment: input.key, after: created });
      return created;
    });
    if (value) this.feed.emit('environment.created', { environment: value.key });
    return value;
  }

  /** First boot: creates the default environments that do not exist yet. */
  ensureDefaults(): void {
    for (const env of DEFAULT_ENVIRONMENTS) {
      if (!this.stmts.one.get(env.key)) this.create({ tokenId: null, name: 'system' }, env);
    }
  }
}
