/**
 * Flag definitions, shared by every environment: create (with the default state in each environment), list, get,
 * patch (description, tags, variants, archived) and archive. Every write goes through the Writer: one transaction with
 * the audit entry, the environment version bumps and the change-log rows. States live in flag-state-store.ts.
 */
import type { FlagDefinition, JsonValue } from '@aviary/sdk/core';
import { conflict, invalid, notFound, StoreError, type StoreIssue } from './store-errors.js';
import { apiTime, apiTimeOrNull } from '../openapi/time.js';
import { defaultFlagState, validateFlagDefinition, validateFlagState } from './core-api.js';
import { dependentsOf, nullableNumber, segmentKeys } from './flag-state-store.js';
import { bool, type Sql, type StorePort } from './port.js';
import type { Precondition } from './preconditions.js';
import type { FlagRow, FlagStateRow } from './rows.js';
import type { StoredFlagState } from './schema.js';
import type { Actor, WriteContext, Writer } from './writer.js';
import { recordVersion } from './history-store.js';

/** A flag's state in one environment, as the API shows it in a flag listing. */
export interface EnvironmentSummary {
  enabled: boolean;
  version: number;
  /** RFC 3339, like every time in these API shapes (stored as epoch ms). */
  killedAt: string | null;
  /** The flags this flag's state requires there (its prerequisites' keys); absent when none. */
  requires?: string[];
  /** What it serves at a glance: how many rules and targeted keys come first, and what everyone else gets. */
  serving: { rules: number; targets: number; fallthrough: StoredFlagState['fallthrough'] };
  /** The last change of this state: when, by whom, what and why (from its history); absent for states older than it. */
  lastChange?: { at: string; by: string; action: string; reason: string | null };
}

/** The latest history entry of each state (its version is the state's): one PK lookup per state. */
interface LastChangeRow {
  environment: string;
  flag: string;
  at: number;
  actor_name: string;
  action: string;
  reason: string | null;
}

/** A flag as the admin API shows it. */
export interface FlagResource extends FlagDefinition {
  description: string;
  tags: string[];
  archived: boolean;
  /** Bumped on every definition change (the flag's ETag). */
  revision: number;
  createdAt: string;
  updatedAt: string;
  environments: Record<string, EnvironmentSummary>;
}

/** Filters of the flag listing. */
export interface FlagFilter {
  tag?: string;
  /** Default false (only live flags); 'all' lists both. */
  archived?: boolean | 'all';
  /** Case-insensitive substring of key or description. */
  q?: string;
  /** With `enabled`/`killed`: filter on the state in this environment. */
  environment?: string;
  enabled?: boolean;
  killed?: boolean;
}

const SQL = {
  flag: 'SELECT * FROM flags WHERE key = ?',
  flags: 'SELECT * FROM flags ORDER BY key',
  insertFlag: `INSERT INTO flags (key, kind, variants, description, tags, archived, revision, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`,
  updateFlag: `UPDATE flags SET variants = ?, description = ?, tags = ?, archived = ?, revision = revision + 1, updated_at = ?
    WHERE key = ?`,
  envKeys: 'SELECT key FROM environments ORDER BY key',
  statesOfFlag: 'SELECT * FROM flag_states WHERE flag = ?',
  states: 'SELECT * FROM flag_states',
  lastChanges: `SELECT h.environment, h.flag, h.at, h.actor_name, h.action, h.reason FROM flag_states s
    JOIN flag_state_history h ON h.environment = s.environment AND h.flag = s.flag AND h.version = s.version`,
  lastChangesOfFlag: `SELECT h.environment, h.flag, h.at, h.actor_name, h.action, h.reason FROM flag_states s
    JOIN flag_state_history h ON h.environment = s.environment AND h.flag = s.flag AND h.version = s.version WHERE s.flag = ?`,
  insertState: 'INSERT INTO flag_states (environment, flag, state, version, updated_at) VALUES (?, ?, ?, 1, ?)',
};

const summaryOf = (s: FlagStateRow, last: LastChangeRow | undefined): EnvironmentSummary => {
  const state = JSON.parse(s.state) as StoredFlagState;
  return {
    enabled: state.enabled,
    version: Number(s.version),
    killedAt: apiTimeOrNull(nullableNumber(s.killed_at)),
    ...(state.prerequisites?.length ? { requires: state.prerequisites.map((p) => p.flag) } : {}),
    serving: { rules: state.rules.length, targets: state.targets.reduce((n, t) => n + t.keys.length, 0), fallthrough: state.fallthrough },
    ...(last ? { lastChange: { at: apiTime(Number(last.at)), by: last.actor_name, action: last.action, reason: last.reason } } : {}),
  };
};

const lastKey = (environment: string, flag: string) => `${environment}\u0000${flag}`;
const byState = (rows: LastChangeRow[]) => new Map(rows.map((r) => [lastKey(r.environment, r.flag), r]));

export class FlagDefinitionStore {
  constructor(
    private readonly store: StorePort,
    private readonly writer: Writer,
  ) {}

  private async resource(sql: Sql, row: FlagRow): Promise<FlagResource> {
    const environments: Record<string, EnvironmentSummary> = {};
    const last = byState(await sql.all<LastChangeRow>(SQL.lastChangesOfFlag, [row.key]));
    for (const s of await sql.all<FlagStateRow>(SQL.statesOfFlag, [row.key]))
      environments[s.environment] = summaryOf(s, last.get(lastKey(s.environment, s.flag)));
    return resourceOf(row, environments);
  }

  async get(key: string): Promise<FlagResource | null> {
    const row = await this.store.get<FlagRow>(SQL.flag, [key]);
    return row ? this.resource(this.store, row) : null;
  }

  async list(filter: FlagFilter = {}): Promise<FlagResource[]> {
    const q = filter.q?.toLowerCase();
    const archived = filter.archived ?? false;
    // Two reads in one view: the definitions and every state, grouped here (not one query per flag).
    const { rows, states, lastChanges } = await this.store.transaction(
      async (tx) => ({
        rows: await tx.all<FlagRow>(SQL.flags),
        states: await tx.all<FlagStateRow>(SQL.states),
        lastChanges: byState(await tx.all<LastChangeRow>(SQL.lastChanges)),
      }),
      { readOnly: true },
    );
    const byFlag = new Map<string, Record<string, EnvironmentSummary>>();
    for (const s of states) {
      let envs = byFlag.get(s.flag);
      if (!envs) byFlag.set(s.flag, (envs = {}));
      envs[s.environment] = summaryOf(s, lastChanges.get(lastKey(s.environment, s.flag)));
    }
    const out: FlagResource[] = [];
    for (const row of rows) {
      if (archived !== 'all' && bool(row.archived) !== archived) continue;
      if (filter.tag !== undefined && !(JSON.parse(row.tags) as string[]).includes(filter.tag)) continue;
      if (q && !row.key.toLowerCase().includes(q) && !row.description.toLowerCase().includes(q)) continue;
      const res = resourceOf(row, byFlag.get(row.key) ?? {});
      if (filter.environment !== undefined) {
        const st = res.environments[filter.environment];
        if (!st) continue;
        if (filter.enabled !== undefined && st.enabled !== filter.enabled) continue;
        if (filter.killed !== undefined && (st.killedAt !== null && !st.enabled) !== filter.killed) continue;
      }
      out.push(res);
    }
    return out;
  }

  /** Creates a flag (input validated by the core) with its default state in every environment. */
  async create(actor: Actor, input: unknown): Promise<FlagResource> {
    const v = validateFlagDefinition(input);
    if (!v.ok) throw invalid(v.issues);
    const def = v.value;
    const { value } = await this.writer.write(actor, (w) => this.createIn(w, def));
    return value;
  }

  /** `create` inside an existing write, with a definition the core already validated (flags as code: apply-service.ts). */
  async createIn(w: WriteContext, def: FlagDefinition): Promise<FlagResource> {
    {
      if (await w.tx.get(SQL.flag, [def.key])) throw conflict(`Flag "${def.key}" already exists.`);
      await w.tx.run(SQL.insertFlag, [
        def.key,
        def.kind,
        JSON.stringify(def.variants),
        def.description ?? '',
        JSON.stringify(def.tags ?? []),
        def.archived === true,
        w.now,
        w.now,
      ]);
      const state: StoredFlagState = defaultFlagState(def);
      for (const env of await w.tx.all<{ key: string }>(SQL.envKeys)) {
        await w.tx.run(SQL.insertState, [env.key, def.key, JSON.stringify(state), w.now]);
        await recordVersion(w, env.key, def.key, 1, state, 'flag.create', null);
      }
      const created = await this.resource(w.tx, (await w.tx.get<FlagRow>(SQL.flag, [def.key]))!);
      w.audit({ action: 'flag.create', resourceType: 'flag', resourceKey: def.key, after: definitionJson(created) });
      if (!created.archived) w.touchFlag(def.key);
      return created;
    }
  }

  /**
   * Changes a flag's definition (`description`, `tags`, `variants`, `archived`; `key` and `kind` are fixed). New
   * variants must keep every environment's state valid, otherwise 409 naming each state that would break.
   */
  async patch(actor: Actor, key: string, patch: Record<string, unknown>, precondition?: Precondition, action = 'flag.update'): Promise<FlagResource> {
    const { value } = await this.writer.write(actor, (w) => this.patchIn(w, key, patch, precondition, action));
    return value;
  }

  /** `patch` inside an existing write (flags as code: apply-service.ts). */
  async patchIn(
    w: WriteContext,
    key: string,
    patch: Record<string, unknown>,
    precondition?: Precondition,
    action = 'flag.update',
  ): Promise<FlagResource> {
    {
      const row = await w.tx.get<FlagRow>(SQL.flag, [key]);
      if (!row) throw notFound(`No flag "${key}".`);
      precondition?.(Number(row.revision));
      const before = await this.resource(w.tx, row);
      const issues: StoreIssue[] = [];
      if ('key' in patch && patch.key !== key) issues.push({ path: '/key', message: 'cannot be changed' });
      if ('kind' in patch && patch.kind !== row.kind) issues.push({ path: '/kind', message: 'cannot be changed; create a new flag' });
      for (const k of Object.keys(patch)) {
        if (!['key', 'kind', 'variants', 'description', 'tags', 'archived'].includes(k))
          issues.push({ path: `/${k}`, message: 'is not a known property' });
      }
      if (issues.length) throw invalid(issues);
      const merged = {
        key,
        kind: row.kind,
        variants: 'variants' in patch ? patch.variants : before.variants,
        description: 'description' in patch ? patch.description : before.description,
        tags: 'tags' in patch ? patch.tags : before.tags,
        archived: 'archived' in patch ? patch.archived : before.archived,
      };
      const v = validateFlagDefinition(merged);
      if (!v.ok) throw invalid(v.issues);
      const def = v.value;
      if (def.archived === true || 'variants' in patch) await this.checkDependents(w.tx, key, before.archived, def);
      if ('variants' in patch) {
        const segments = await segmentKeys(w.tx);
        const broken: StoreIssue[] = [];
        for (const s of await w.tx.all<FlagStateRow>(SQL.statesOfFlag, [key])) {
          const check = validateFlagState(JSON.parse(s.state), def, segments);
          if (!check.ok) for (const i of check.issues) broken.push({ path: `/environments/${s.environment}/state${i.path}`, message: i.message });
        }
        if (broken.length) {
          throw conflict(
            `The new variants would break the state of flag "${key}" in ${new Set(broken.map((b) => b.path.split('/')[2])).size} environment(s); change those states first.`,
            broken,
          );
        }
      }
      await w.tx.run(SQL.updateFlag, [
        JSON.stringify(def.variants),
        def.description ?? '',
        JSON.stringify(def.tags ?? []),
        def.archived === true,
        w.now,
        key,
      ]);
      const after = await this.resource(w.tx, (await w.tx.get<FlagRow>(SQL.flag, [key]))!);
      const archivedChanged = before.archived !== after.archived;
      w.audit({
        action: archivedChanged ? (after.archived ? 'flag.archive' : 'flag.unarchive') : action,
        resourceType: 'flag',
        resourceKey: key,
        before: definitionJson(before),
        after: definitionJson(after),
      });
      // Archived flags are invisible to SDKs: archiving is a flag.delete, un-archiving an upsert.
      if (!(before.archived && after.archived)) w.touchFlag(key);
      return after;
    }
  }

  /**
   * Refuses (409) to archive a flag live flags require (in any environment), or to take away a variant one of them
   * requires of it (CONTRACT §12), naming them: their states would no longer be what was validated.
   */
  private async checkDependents(sql: Sql, key: string, wasArchived: boolean, def: FlagDefinition): Promise<void> {
    if (wasArchived) return;
    const dependents = await dependentsOf(sql, key);
    if (dependents.length === 0) return;
    const flags = [...new Set(dependents.map((d) => d.flag))].sort();
    const named = `flag${flags.length > 1 ? 's' : ''} ${flags.map((f) => `"${f}"`).join(', ')}`;
    if (def.archived === true) {
      throw new StoreError('in-use', `Flag "${key}" is required by ${named}; remove it from their prerequisites first.`, [], {
        flags,
        usages: dependents.map(({ flag, environment }) => ({ flag, environment })),
      });
    }
    const variants = new Set(def.variants.map((v) => v.key));
    const broken: StoreIssue[] = [];
    const breaking = new Set<string>();
    for (const d of dependents) {
      for (const variant of d.variants) {
        if (variants.has(variant)) continue;
        breaking.add(d.flag);
        broken.push({
          path: '/variants',
          message: `flag "${d.flag}" requires variant "${variant}" in "${d.environment}" (its /prerequisites/${d.prerequisite})`,
        });
      }
    }
    if (broken.length) {
      const who = [...breaking].sort().map((f) => `"${f}"`);
      throw conflict(`The new variants would break the prerequisites of ${who.join(', ')} on flag "${key}"; change those first.`, broken);
    }
  }

  /** Archives a flag (idempotent). */
  async archive(actor: Actor, key: string, precondition?: Precondition): Promise<FlagResource> {
    const row = await this.store.get<FlagRow>(SQL.flag, [key]);
    if (row && bool(row.archived)) {
      precondition?.(Number(row.revision));
      return this.resource(this.store, row);
    }
    return this.patch(actor, key, { archived: true }, precondition);
  }
}

function resourceOf(row: FlagRow, environments: Record<string, EnvironmentSummary>): FlagResource {
  return {
    key: row.key,
    kind: row.kind,
    variants: JSON.parse(row.variants) as FlagDefinition['variants'],
    description: row.description,
    tags: JSON.parse(row.tags) as string[],
    archived: bool(row.archived),
    revision: Number(row.revision),
    createdAt: apiTime(Number(row.created_at)),
    updatedAt: apiTime(Number(row.updated_at)),
    environments,
  };
}

function definitionJson(f: FlagResource): JsonValue {
  return {
    key: f.key,
    kind: f.kind,
    variants: f.variants,
    description: f.description,
    tags: f.tags,
    archived: f.archived,
    revision: f.revision,
  } as unknown as JsonValue;
}
