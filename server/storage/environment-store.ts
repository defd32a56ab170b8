/** Environments: listing, creation (with a default state for every existing flag), the first-boot defaults. */
import type { FlagDefinition } from '@aviary/sdk/core';
import { defaultFlagState } from './core-api.js';
import { apiTime } from '../openapi/time.js';
import type { ChangeFeed } from './change-feed.js';
import { bool, type StorePort } from './port.js';
import { notFound } from './store-errors.js';
import type { EnvironmentRow } from './rows.js';
import type { StoredFlagState } from './schema.js';
import { CHANGES_CHANNEL, type Actor, type Writer } from './writer.js';
import { recordVersion } from './history-store.js';

/** An environment as the API shows it. */
export interface EnvironmentInfo {
  key: string;
  name: string;
  /** Bumped by every change SDKs of this environment can see. */
  version: number;
  /** RFC 3339 (the API's form; stored as epoch ms). */
  createdAt: string;
  /** State changes (PUT of a flag state) become change requests that another actor approves (change-request-store.ts). */
  requireApproval: boolean;
}

/** Environments every installation has after its first boot. */
export const DEFAULT_ENVIRONMENTS = [
  { key: 'development', name: 'Development' },
  { key: 'staging', name: 'Staging' },
  { key: 'production', name: 'Production' },
] as const;

const toInfo = (r: EnvironmentRow): EnvironmentInfo => ({
  key: r.key,
  name: r.name,
  version: Number(r.version),
  createdAt: apiTime(Number(r.created_at)),
  requireApproval: bool(r.require_approval),
});

const SQL = {
  all: 'SELECT key, name, version, created_at, require_approval FROM environments',
  one: 'SELECT key, name, version, created_at, require_approval FROM environments WHERE key = ?',
  update: 'UPDATE environments SET name = ?, require_approval = ? WHERE key = ?',
  insert: 'INSERT INTO environments (key, name, version, created_at) VALUES (?, ?, 0, ?)',
  flags: 'SELECT key, kind, variants FROM flags',
  insertState: 'INSERT INTO flag_states (environment, flag, state, version, updated_at) VALUES (?, ?, ?, 1, ?)',
};

export class EnvironmentStore {
  constructor(
    private readonly store: StorePort,
    private readonly writer: Writer,
    private readonly feed: ChangeFeed,
    /** Loads a new environment into this replica's live state before anyone hears of it. */
    private readonly loaded: (environment: string) => Promise<unknown>,
  ) {}

  /** In creation order (the defaults, created within the same millisecond at first boot, in their listed order). */
  async list(): Promise<EnvironmentInfo[]> {
    const rank = (key: string) => {
      const i = DEFAULT_ENVIRONMENTS.findIndex((d) => d.key === key);
      return i < 0 ? DEFAULT_ENVIRONMENTS.length : i;
    };
    const rows = await this.store.all<EnvironmentRow>(SQL.all);
    rows.sort((a, b) => Number(a.created_at) - Number(b.created_at) || rank(a.key) - rank(b.key) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return rows.map(toInfo);
  }

  async get(key: string): Promise<EnvironmentInfo | null> {
    const row = await this.store.get<EnvironmentRow>(SQL.one, [key]);
    return row ? toInfo(row) : null;
  }

  /** Creates an environment with every flag's default state; null when it already exists. */
  async create(actor: Actor, input: { key: string; name: string }): Promise<EnvironmentInfo | null> {
    const { value } = await this.writer.write(actor, async (w) => {
      if (await w.tx.get(SQL.one, [input.key])) return null;
      await w.tx.run(SQL.insert, [input.key, input.name, w.now]);
      for (const f of await w.tx.all<{ key: string; kind: FlagDefinition['kind']; variants: string }>(SQL.flags)) {
        const def: FlagDefinition = { key: f.key, kind: f.kind, variants: JSON.parse(f.variants) as FlagDefinition['variants'] };
        const state: StoredFlagState = defaultFlagState(def);
        await w.tx.run(SQL.insertState, [input.key, f.key, JSON.stringify(state), w.now]);
        await recordVersion(w, input.key, f.key, 1, state, 'environment.create', null);
      }
      const created = toInfo((await w.tx.get<EnvironmentRow>(SQL.one, [input.key]))!);
      w.audit({ action: 'environment.create', resourceType: 'environment', resourceKey: input.key, environment: input.key, after: created });
      // Other replicas load it when they hear of version 0 (change-follower.ts).
      await w.tx.notify(CHANGES_CHANNEL, `${input.key}:0`);
      return created;
    });
    if (value) {
      await this.loaded(value.key);
      this.feed.emit('environment.created', { environment: value.key });
    }
    return value;
  }

  /**
   * Renames an environment or turns change requests on or off for it (audited as `environment.update`). Nothing SDKs
   * see changes, so no version is bumped.
   */
  async update(actor: Actor, key: string, patch: { name?: string | undefined; requireApproval?: boolean | undefined }): Promise<EnvironmentInfo> {
    const { value } = await this.writer.write(actor, async (w) => {
      const row = await w.tx.get<EnvironmentRow>(SQL.one, [key]);
      if (!row) throw notFound(`No environment "${key}".`);
      const before = toInfo(row);
      const name = patch.name ?? before.name;
      const requireApproval = patch.requireApproval ?? before.requireApproval;
      if (name === before.name && requireApproval === before.requireApproval) return before;
      await w.tx.run(SQL.update, [name, requireApproval, key]);
      const after = toInfo((await w.tx.get<EnvironmentRow>(SQL.one, [key]))!);
      w.audit({ action: 'environment.update', resourceType: 'environment', resourceKey: key, environment: key, before, after });
      return after;
    });
    return value;
  }

  /** Creates the default environments that do not exist yet (first boot). */
  async ensureDefaults(): Promise<void> {
    for (const env of DEFAULT_ENVIRONMENTS) {
      if (!(await this.store.get(SQL.one, [env.key]))) await this.create({ tokenId: null, name: 'system' }, env);
    }
  }
}
