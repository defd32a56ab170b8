/**
 * Flags and their per-environment state: definitions (create, list, get, patch, archive), states (get, put),
 * kill switches, and the panic button. Every write goes through the Writer: one transaction with the audit entry,
 * the environment version bump and the change-log row.
 */
import type { FlagDefinition, FlagState } from '@aviary/sdk/core';
import { problem, type ProblemIssue } from '../errors.js';
import { apiTime, apiTimeOrNull } from '../openapi/time.js';
import { defaultFlagState, validateFlagDefinition, validateFlagState } from './core-api.js';
import { bool, type Sql, type StorePort } from './port.js';
import type { StoredFlagState } from './schema.js';
import { toFlagState } from './snapshot.js';
import type { Actor, WriteContext, Writer } from './writer.js';

/** A flag's state in one environment, as the API shows it in a flag listing. */
export interface EnvironmentSummary {
  enabled: boolean;
  version: number;
  /** RFC 3339, like every time in these API shapes (stored as epoch ms). */
  killedAt: string | null;
}

/** A flag as the admin API shows it. */
export interface FlagResource extends FlagDefinition {
  description: string;
  tags: string[];
  archived: boolean;
  /** Bumped on every definition change; the flag's ETag is `"r<revision>"`. */
  revision: number;
  createdAt: string;
  updatedAt: string;
  environments: Record<string, EnvironmentSummary>;
}

/** A flag's state in one environment as the admin API shows it: the FlagState plus read-only bookkeeping. */
export interface FlagStateResource extends FlagState {
  flag: string;
  environment: string;
  /** When the kill switch was last thrown (null when the flag is enabled or was never killed). */
  killedAt: string | null;
  killReason: string | null;
  /** True while the flag is held off by `kill-all` (revive-all will restore it). */
  panicked: boolean;
  updatedAt: string;
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

/** The result of a state write: the new state, whether anything changed, the environment's version after it. */
export interface StateWriteResult {
  state: FlagStateResource;
  changed: boolean;
  environmentVersion: number;
}

/** What a state mutation returns: the new state, or null for "no change" (idempotent operations). Times in epoch ms. */
export type StateMutation = (
  current: FlagStateResource,
  now: number,
) => {
  state: StoredFlagState;
  killedAt?: number | null;
  killReason?: string | null;
  panicSavedState?: StoredFlagState | null;
} | null;

interface FlagRow {
  key: string;
  kind: FlagDefinition['kind'];
  variants: string;
  description: string;
  tags: string;
  archived: number | boolean;
  revision: number;
  created_at: number;
  updated_at: number;
}

interface StateRow {
  environment: string;
  flag: string;
  state: string;
  version: number;
  killed_at: number | null;
  kill_reason: string | null;
  panic_saved_state: string | null;
  updated_at: number;
}

/** Parses an `If-Match` header into the list of entity tags (without W/ and quotes); undefined when absent. */
export function parseIfMatch(header: string | string[] | undefined): string[] | undefined {
  if (header === undefined) return undefined;
  return (Array.isArray(header) ? header.join(',') : header)
    .split(',')
    .map((s) =>
      s
        .trim()
        .replace(/^W\//, '')
        .replace(/^"(.*)"$/, '$1'),
    )
    .filter((s) => s.length > 0);
}

/** Throws 412 unless `ifMatch` (when given) lists `current` or `*`. */
export function checkPrecondition(ifMatch: string[] | undefined, current: string, what: string): void {
  if (ifMatch === undefined) return;
  if (ifMatch.includes('*') || ifMatch.includes(current)) return;
  throw problem('precondition-failed', `${what} has changed (its ETag is now "${current}"); re-read it and retry.`, {
    extensions: { currentETag: `"${current}"` },
  });
}

export const flagETag = (revision: number) => `r${revision}`;
export const stateETag = (version: number) => `v${version}`;

function definitionOf(row: FlagRow): FlagDefinition {
  return { key: row.key, kind: row.kind, variants: JSON.parse(row.variants) as FlagDefinition['variants'] };
}

const SQL = {
  flag: 'SELECT * FROM flags WHERE key = ?',
  flags: 'SELECT * FROM flags ORDER BY key',
  insertFlag: `INSERT INTO flags (key, kind, variants, description, tags, archived, revision, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`,
  updateFlag: `UPDATE flags SET variants = ?, description = ?, tags = ?, archived = ?, revision = revision + 1, updated_at = ?
    WHERE key = ?`,
  envKeys: 'SELECT key FROM environments ORDER BY key',
  envExists: 'SELECT key FROM environments WHERE key = ?',
  state: 'SELECT * FROM flag_states WHERE environment = ? AND flag = ?',
  statesOfFlag: 'SELECT * FROM flag_states WHERE flag = ?',
  statesOf: 'SELECT * FROM flag_states',
  statesOfEnv: 'SELECT s.*, f.archived FROM flag_states s JOIN flags f ON f.key = s.flag WHERE s.environment = ? ORDER BY s.flag',
  insertState: 'INSERT INTO flag_states (environment, flag, state, version, updated_at) VALUES (?, ?, ?, 1, ?)',
  updateState: `UPDATE flag_states SET state = ?, version = version + 1, killed_at = ?, kill_reason = ?, panic_saved_state = ?, updated_at = ?
    WHERE environment = ? AND flag = ?`,
  segmentKeys: 'SELECT key FROM segments',
  envVersion: 'SELECT version FROM environments WHERE key = ?',
};

export class FlagStore {
  constructor(
    private readonly store: StorePort,
    private readonly writer: Writer,
  ) {}

  private async resource(sql: Sql, row: FlagRow): Promise<FlagResource> {
    const environments: Record<string, EnvironmentSummary> = {};
    for (const s of await sql.all<StateRow>(SQL.statesOfFlag, [row.key])) {
      const st = JSON.parse(s.state) as StoredFlagState;
      environments[s.environment] = { enabled: st.enabled, version: Number(s.version), killedAt: apiTimeOrNull(nullableNumber(s.killed_at)) };
    }
    return resourceOf(row, environments);
  }

  private stateResource(row: StateRow): FlagStateResource {
    return {
      ...toFlagState(JSON.parse(row.state) as StoredFlagState, Number(row.version)),
      flag: row.flag,
      environment: row.environment,
      killedAt: apiTimeOrNull(nullableNumber(row.killed_at)),
      killReason: row.kill_reason,
      panicked: row.panic_saved_state !== null,
      updatedAt: apiTime(Number(row.updated_at)),
    };
  }

  async segmentKeys(sql: Sql = this.store): Promise<Set<string>> {
    return new Set((await sql.all<{ key: string }>(SQL.segmentKeys)).map((r) => r.key));
  }

  async get(key: string): Promise<FlagResource | null> {
    const row = await this.store.get<FlagRow>(SQL.flag, [key]);
    return row ? this.resource(this.store, row) : null;
  }

  async list(filter: FlagFilter = {}): Promise<FlagResource[]> {
    const q = filter.q?.toLowerCase();
    const archived = filter.archived ?? false;
    // Two reads in one view: the definitions and every state, grouped here (not one query per flag).
    const { rows, states } = await this.store.transaction(
      async (tx) => ({ rows: await tx.all<FlagRow>(SQL.flags), states: await tx.all<StateRow>(SQL.statesOf) }),
      { readOnly: true },
    );
    const byFlag = new Map<string, Record<string, EnvironmentSummary>>();
    for (const s of states) {
      let envs = byFlag.get(s.flag);
      if (!envs) byFlag.set(s.flag, (envs = {}));
      const st = JSON.parse(s.state) as StoredFlagState;
      envs[s.environment] = { enabled: st.enabled, version: Number(s.version), killedAt: apiTimeOrNull(nullableNumber(s.killed_at)) };
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
    if (!v.ok) throw validation(v.issues);
    const def = v.value;
    const { value } = await this.writer.write(actor, async (w) => {
      if (await w.tx.get(SQL.flag, [def.key])) throw problem('conflict', `Flag "${def.key}" already exists.`);
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
      for (const env of await w.tx.all<{ key: string }>(SQL.envKeys))
        await w.tx.run(SQL.insertState, [env.key, def.key, JSON.stringify(state), w.now]);
      const created = await this.resource(w.tx, (await w.tx.get<FlagRow>(SQL.flag, [def.key]))!);
      w.audit({ action: 'flag.create', resourceType: 'flag', resourceKey: def.key, after: definitionJson(created) });
      if (!created.archived) w.touchFlag(def.key);
      return created;
    });
    return value;
  }

  /**
   * Changes a flag's definition (`description`, `tags`, `variants`, `archived`; `key` and `kind` are fixed). New
   * variants must keep every environment's state valid, otherwise 409 naming each state that would break.
   */
  async patch(actor: Actor, key: string, patch: Record<string, unknown>, ifMatch?: string[], action = 'flag.update'): Promise<FlagResource> {
    const { value } = await this.writer.write(actor, async (w) => {
      const row = await w.tx.get<FlagRow>(SQL.flag, [key]);
      if (!row) throw problem('not-found', `No flag "${key}".`);
      checkPrecondition(ifMatch, flagETag(Number(row.revision)), `Flag "${key}"`);
      const before = await this.resource(w.tx, row);
      const issues: ProblemIssue[] = [];
      if ('key' in patch && patch.key !== key) issues.push({ path: '/key', message: 'cannot be changed' });
      if ('kind' in patch && patch.kind !== row.kind) issues.push({ path: '/kind', message: 'cannot be changed; create a new flag' });
      for (const k of Object.keys(patch)) {
        if (!['key', 'kind', 'variants', 'description', 'tags', 'archived'].includes(k))
          issues.push({ path: `/${k}`, message: 'is not a known property' });
      }
      if (issues.length) throw validation(issues);
      const merged = {
        key,
        kind: row.kind,
        variants: 'variants' in patch ? patch.variants : before.variants,
        description: 'description' in patch ? patch.description : before.description,
        tags: 'tags' in patch ? patch.tags : before.tags,
        archived: 'archived' in patch ? patch.archived : before.archived,
      };
      const v = validateFlagDefinition(merged);
      if (!v.ok) throw validation(v.issues);
      const def = v.value;
      if ('variants' in patch) {
        const segmentKeys = await this.segmentKeys(w.tx);
        const broken: ProblemIssue[] = [];
        for (const s of await w.tx.all<StateRow>(SQL.statesOfFlag, [key])) {
          const check = validateFlagState(JSON.parse(s.state), def, segmentKeys);
          if (!check.ok) for (const i of check.issues) broken.push({ path: `/environments/${s.environment}/state${i.path}`, message: i.message });
        }
        if (broken.length) {
          throw problem(
            'conflict',
            `The new variants would break the state of flag "${key}" in ${new Set(broken.map((b) => b.path.split('/')[2])).size} environment(s); change those states first.`,
            { errors: broken },
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
    });
    return value;
  }

  /** Archives a flag (idempotent). */
  async archive(actor: Actor, key: string, ifMatch?: string[]): Promise<FlagResource> {
    const row = await this.store.get<FlagRow>(SQL.flag, [key]);
    if (row && bool(row.archived)) {
      checkPrecondition(ifMatch, flagETag(Number(row.revision)), `Flag "${key}"`);
      return this.resource(this.store, row);
    }
    return this.patch(actor, key, { archived: true }, ifMatch);
  }

  async getState(environment: string, key: string): Promise<FlagStateResource | null> {
    const row = await this.store.get<StateRow>(SQL.state, [environment, key]);
    return row ? this.stateResource(row) : null;
  }

  /**
   * The one function that changes a flag's state: reads the current state, lets `mutate` compute the next one
   * (null: nothing to do), writes it with the audit entry, bumps versions and appends the change log, all in one
   * transaction. The canary guard calls it with actor `{ tokenId: null, name: 'canary-guard' }`.
   */
  async updateFlagState(
    environment: string,
    key: string,
    mutate: StateMutation,
    actor: Actor,
    reason: string | null = null,
    options: { action?: string; ifMatch?: string[]; guard?: (w: WriteContext) => Promise<void> } = {},
  ): Promise<StateWriteResult> {
    const { value, versions } = await this.writer.write(actor, async (w) => {
      await options.guard?.(w);
      return this.mutateState(w, environment, key, mutate, reason, options);
    });
    return { ...value, environmentVersion: versions.get(environment) ?? value.environmentVersion };
  }

  /** `updateFlagState` inside an existing write (several flags in one transaction). */
  async mutateState(
    w: WriteContext,
    environment: string,
    key: string,
    mutate: StateMutation,
    reason: string | null,
    options: { action?: string; ifMatch?: string[] } = {},
  ): Promise<StateWriteResult> {
    const flag = await w.tx.get<FlagRow>(SQL.flag, [key]);
    if (!flag) throw problem('not-found', `No flag "${key}".`);
    if (!(await w.tx.get(SQL.envExists, [environment]))) throw problem('not-found', `No environment "${environment}".`);
    const row = await w.tx.get<StateRow>(SQL.state, [environment, key]);
    if (!row) throw problem('not-found', `Flag "${key}" has no state in "${environment}".`);
    checkPrecondition(options.ifMatch, stateETag(Number(row.version)), `The state of "${key}" in "${environment}"`);
    if (bool(flag.archived)) throw problem('conflict', `Flag "${key}" is archived; un-archive it before changing its state.`);
    const current = this.stateResource(row);
    const next = mutate(current, w.now);
    if (next === null) return { state: current, changed: false, environmentVersion: await this.envVersion(w.tx, environment) };
    // Defence in depth: whatever computed it (a route, the canary guard), no state SDKs cannot evaluate is stored.
    const check = validateFlagState(next.state, definitionOf(flag), await this.segmentKeys(w.tx));
    if (!check.ok) throw validation(check.issues);
    await w.tx.run(SQL.updateState, [
      JSON.stringify(check.value),
      next.killedAt !== undefined ? next.killedAt : nullableNumber(row.killed_at),
      next.killReason !== undefined ? next.killReason : row.kill_reason,
      next.panicSavedState !== undefined ? (next.panicSavedState === null ? null : JSON.stringify(next.panicSavedState)) : row.panic_saved_state,
      w.now,
      environment,
      key,
    ]);
    const after = this.stateResource((await w.tx.get<StateRow>(SQL.state, [environment, key]))!);
    w.audit({
      action: options.action ?? 'flag-state.update',
      resourceType: 'flag',
      resourceKey: key,
      environment,
      before: stateJson(current),
      after: stateJson(after),
      reason,
    });
    w.touchFlag(key, environment);
    // The writer bumps the version at commit; updateFlagState reports the bumped one.
    return { state: after, changed: true, environmentVersion: await this.envVersion(w.tx, environment) };
  }

  /** Replaces a flag's state in an environment (validated by the core). Clears any panic hold on it. */
  async putState(
    actor: Actor,
    environment: string,
    key: string,
    input: unknown,
    ifMatch?: string[],
    reason: string | null = null,
  ): Promise<StateWriteResult> {
    const flag = await this.store.get<FlagRow>(SQL.flag, [key]);
    if (!flag) throw problem('not-found', `No flag "${key}".`);
    const body = stripReadOnly(input);
    const v = validateFlagState(body, definitionOf(flag), await this.segmentKeys());
    if (!v.ok) throw validation(v.issues);
    const state: StoredFlagState = v.value;
    return this.updateFlagState(
      environment,
      key,
      (cur) => ({
        state,
        // Turning a killed flag back on by a PUT ends the kill; a PUT is an operator taking over from a panic.
        ...(state.enabled ? { killedAt: null, killReason: null } : cur.enabled ? { killedAt: null, killReason: null } : {}),
        panicSavedState: null,
      }),
      actor,
      reason,
      { action: 'flag-state.update', ...(ifMatch ? { ifMatch } : {}) },
    );
  }

  /** The kill switch: `enabled: false`. Idempotent: killing a disabled flag changes nothing. */
  kill(actor: Actor, environment: string, key: string, reason: string | null): Promise<StateWriteResult> {
    return this.updateFlagState(
      environment,
      key,
      (cur, now) => (cur.enabled ? { state: { ...storedOf(cur), enabled: false }, killedAt: now, killReason: reason } : null),
      actor,
      reason,
      { action: 'flag.kill' },
    );
  }

  /** Undoes the kill switch: `enabled: true`. Idempotent. Clears a panic hold on this flag. */
  revive(actor: Actor, environment: string, key: string, reason: string | null): Promise<StateWriteResult> {
    return this.updateFlagState(
      environment,
      key,
      (cur) => (cur.enabled ? null : { state: { ...storedOf(cur), enabled: true }, killedAt: null, killReason: null, panicSavedState: null }),
      actor,
      reason,
      { action: 'flag.revive' },
    );
  }

  /**
   * The panic button: in one transaction, disables every enabled, live flag of the environment except `except`,
   * saving each one's exact state so `reviveAll` can restore it. Flags already off are left alone (and so are
   * restored "exactly" by doing nothing).
   */
  async killAll(
    actor: Actor,
    environment: string,
    options: { reason: string | null; except: string[] },
  ): Promise<{ killed: string[]; spared: string[]; environmentVersion: number }> {
    const except = new Set(options.except);
    const { value, versions } = await this.writer.write(actor, async (w) => {
      if (!(await w.tx.get(SQL.envExists, [environment]))) throw problem('not-found', `No environment "${environment}".`);
      const killed: string[] = [];
      const spared: string[] = [];
      for (const row of await w.tx.all<StateRow & { archived: number | boolean }>(SQL.statesOfEnv, [environment])) {
        if (bool(row.archived)) continue;
        const stored = JSON.parse(row.state) as StoredFlagState;
        if (!stored.enabled) continue;
        if (except.has(row.flag)) {
          spared.push(row.flag);
          continue;
        }
        await this.mutateState(
          w,
          environment,
          row.flag,
          () => ({ state: { ...stored, enabled: false }, killedAt: w.now, killReason: options.reason, panicSavedState: stored }),
          options.reason,
          { action: 'flag.kill-all' },
        );
        killed.push(row.flag);
      }
      w.audit({
        action: 'environment.kill-all',
        resourceType: 'environment',
        resourceKey: environment,
        environment,
        after: { killed, spared },
        reason: options.reason,
      });
      return { killed, spared, version: await this.envVersion(w.tx, environment) };
    });
    return { killed: value.killed, spared: value.spared, environmentVersion: versions.get(environment) ?? value.version };
  }

  /** Restores every flag held by `killAll` to exactly the state it had before, in one transaction. */
  async reviveAll(actor: Actor, environment: string, reason: string | null): Promise<{ revived: string[]; environmentVersion: number }> {
    const { value, versions } = await this.writer.write(actor, async (w) => {
      if (!(await w.tx.get(SQL.envExists, [environment]))) throw problem('not-found', `No environment "${environment}".`);
      const revived: string[] = [];
      for (const row of await w.tx.all<StateRow & { archived: number | boolean }>(SQL.statesOfEnv, [environment])) {
        if (row.panic_saved_state === null || bool(row.archived)) continue;
        const saved = JSON.parse(row.panic_saved_state) as StoredFlagState;
        await this.mutateState(w, environment, row.flag, () => ({ state: saved, killedAt: null, killReason: null, panicSavedState: null }), reason, {
          action: 'flag.revive-all',
        });
        revived.push(row.flag);
      }
      w.audit({ action: 'environment.revive-all', resourceType: 'environment', resourceKey: environment, environment, after: { revived }, reason });
      return { revived, version: await this.envVersion(w.tx, environment) };
    });
    return { revived: value.revived, environmentVersion: versions.get(environment) ?? value.version };
  }

  /** Flags (in any environment, archived or not) whose state references the segment. */
  async usingSegment(segmentKey: string, sql: Sql = this.store): Promise<{ flag: string; environment: string }[]> {
    const out: { flag: string; environment: string }[] = [];
    for (const s of await sql.all<StateRow>(SQL.statesOf)) {
      const st = JSON.parse(s.state) as StoredFlagState;
      if (st.rules.some((r) => r.conditions.some((c) => 'segment' in c && c.segment === segmentKey)))
        out.push({ flag: s.flag, environment: s.environment });
    }
    return out;
  }

  private async envVersion(sql: Sql, environment: string): Promise<number> {
    const row = await sql.get<{ version: number }>(SQL.envVersion, [environment]);
    return row ? Number(row.version) : 0;
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

function nullableNumber(v: number | string | null): number | null {
  return v === null ? null : Number(v);
}

function validation(issues: ProblemIssue[]) {
  const first = issues[0];
  return problem('validation', first ? `${first.path || '/'}: ${first.message}` : 'invalid', { errors: issues });
}

function storedOf(s: FlagState): StoredFlagState {
  return { enabled: s.enabled, offVariant: s.offVariant, targets: s.targets, rules: s.rules, fallthrough: s.fallthrough };
}

/** Read-only members a client may echo back from a GET; they are ignored on PUT. */
const READ_ONLY_STATE_FIELDS = ['version', 'flag', 'environment', 'killedAt', 'killReason', 'panicked', 'updatedAt', 'environmentVersion'];

function stripReadOnly(input: unknown): unknown {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return input;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) if (!READ_ONLY_STATE_FIELDS.includes(k)) out[k] = v;
  return out;
}

function definitionJson(f: FlagResource) {
  return { key: f.key, kind: f.kind, variants: f.variants, description: f.description, tags: f.tags, archived: f.archived, revision: f.revision };
}

function stateJson(s: FlagStateResource) {
  return {
    ...storedOf(s),
    version: s.version,
    killedAt: s.killedAt,
    killReason: s.killReason,
    panicked: s.panicked,
  } as unknown as import('@aviary/sdk/core').JsonValue;
}
