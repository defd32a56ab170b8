/**
 * Flag state per environment and its switches: get, put, kill and revive, the panic button (kill-all, revive-all),
 * and the one mutation the canary guard drives. Every write goes through the Writer: one transaction with the audit
 * entry, the environment version bump and the change-log row. Preconditions (If-Match) come in as `Precondition`
 * callbacks run inside the transaction; the HTTP side of them lives in server/admin/preconditions.ts.
 */
import type { FlagDefinition, FlagState, JsonValue, PrerequisiteFlags } from '@aviary/sdk/core';
import { conflict, invalid, notFound } from './store-errors.js';
import { apiTime, apiTimeOrNull } from '../openapi/time.js';
import { validateFlagState } from './core-api.js';
import { bool, type Sql, type StorePort } from './port.js';
import type { Precondition } from './preconditions.js';
import type { FlagRow, FlagStateRow } from './rows.js';
import type { StoredFlagState } from './schema.js';
import { historyVersion, recordVersion } from './history-store.js';
import { toFlagState } from './snapshot.js';
import type { Actor, WriteContext, Writer } from './writer.js';

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

/** Options of a state write. */
export interface StateWriteOptions {
  /** The audit action (default `flag-state.update`). */
  action?: string;
  /** Checked with the state's current version inside the transaction (If-Match). */
  precondition?: Precondition | undefined;
  /** Run first inside the write (the canary guard fences its writes with its lease). */
  guard?: (w: WriteContext) => Promise<void>;
}

const SQL = {
  flag: 'SELECT * FROM flags WHERE key = ?',
  envExists: 'SELECT key FROM environments WHERE key = ?',
  state: 'SELECT * FROM flag_states WHERE environment = ? AND flag = ?',
  states: 'SELECT * FROM flag_states',
  statesOfEnv: 'SELECT s.*, f.archived FROM flag_states s JOIN flags f ON f.key = s.flag WHERE s.environment = ? ORDER BY s.flag',
  liveStates: 'SELECT s.*, f.archived FROM flag_states s JOIN flags f ON f.key = s.flag ORDER BY s.flag, s.environment',
  updateState: `UPDATE flag_states SET state = ?, version = version + 1, killed_at = ?, kill_reason = ?, panic_saved_state = ?, updated_at = ?
    WHERE environment = ? AND flag = ?`,
  segmentKeys: 'SELECT key FROM segments',
  liveFlagsOfEnv: `SELECT f.key, f.variants, s.state FROM flags f JOIN flag_states s ON s.flag = f.key
    WHERE s.environment = ? AND NOT f.archived`,
  envVersion: 'SELECT version FROM environments WHERE key = ?',
};

/** The definition part of a flag row (what a state is validated against). */
export function definitionOf(row: FlagRow): FlagDefinition {
  return { key: row.key, kind: row.kind, variants: JSON.parse(row.variants) as FlagDefinition['variants'] };
}

/** Every segment's key (states may reference only these). */
export async function segmentKeys(sql: Sql): Promise<Set<string>> {
  return new Set((await sql.all<{ key: string }>(SQL.segmentKeys)).map((r) => r.key));
}

/**
 * The live flags of one environment as prerequisites are checked against them (their variants, and the flags each
 * one's state requires): prerequisites and their cycles are per environment, like states.
 */
export async function prerequisiteFlags(sql: Sql, environment: string): Promise<PrerequisiteFlags> {
  const out = new Map<string, { variants: string[]; prerequisites: string[] }>();
  for (const r of await sql.all<{ key: string; variants: string; state: string }>(SQL.liveFlagsOfEnv, [environment])) {
    const state = JSON.parse(r.state) as StoredFlagState;
    out.set(r.key, {
      variants: (JSON.parse(r.variants) as FlagDefinition['variants']).map((v) => v.key),
      prerequisites: (state.prerequisites ?? []).map((p) => p.flag),
    });
  }
  return out;
}

/** The live flags (in any environment) whose state requires `flagKey`, with where, and which entry. */
export async function dependentsOf(
  sql: Sql,
  flagKey: string,
): Promise<{ flag: string; environment: string; prerequisite: number; variants: string[] }[]> {
  const out: { flag: string; environment: string; prerequisite: number; variants: string[] }[] = [];
  for (const s of await sql.all<FlagStateRow & { archived: number | boolean }>(SQL.liveStates)) {
    if (bool(s.archived) || s.flag === flagKey) continue;
    const pre = (JSON.parse(s.state) as StoredFlagState).prerequisites ?? [];
    const i = pre.findIndex((p) => p.flag === flagKey);
    if (i >= 0) out.push({ flag: s.flag, environment: s.environment, prerequisite: i, variants: pre[i]!.variants });
  }
  return out;
}

export class FlagStateStore {
  constructor(
    private readonly store: StorePort,
    private readonly writer: Writer,
  ) {}

  private stateResource(row: FlagStateRow): FlagStateResource {
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

  async getState(environment: string, key: string): Promise<FlagStateResource | null> {
    const row = await this.store.get<FlagStateRow>(SQL.state, [environment, key]);
    return row ? this.stateResource(row) : null;
  }

  /**
   * The one function that changes a flag's state: reads the current state, lets `mutate` compute the next one
   * (null: nothing to do), writes it with the audit entry, bumps versions and appends the change log, all in one
   * transaction. The canary guard calls it with actor `{ tokenId: null, name: 'canary-guard' }` and a fencing `guard`.
   */
  async updateFlagState(
    environment: string,
    key: string,
    mutate: StateMutation,
    actor: Actor,
    reason: string | null = null,
    options: StateWriteOptions = {},
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
    options: StateWriteOptions = {},
  ): Promise<StateWriteResult> {
    const flag = await w.tx.get<FlagRow>(SQL.flag, [key]);
    if (!flag) throw notFound(`No flag "${key}".`);
    if (!(await w.tx.get(SQL.envExists, [environment]))) throw notFound(`No environment "${environment}".`);
    const row = await w.tx.get<FlagStateRow>(SQL.state, [environment, key]);
    if (!row) throw notFound(`Flag "${key}" has no state in "${environment}".`);
    options.precondition?.(Number(row.version));
    if (bool(flag.archived)) throw conflict(`Flag "${key}" is archived; un-archive it before changing its state.`);
    const current = this.stateResource(row);
    const next = mutate(current, w.now);
    if (next === null) return { state: current, changed: false, environmentVersion: await this.envVersion(w.tx, environment) };
    // Defence in depth: whatever computed it (a route, the canary guard), no state SDKs cannot evaluate is stored.
    // Prerequisites are checked against the environment's flags (existence, variants, cycles) when they change; a
    // write that keeps them (a kill, a revive, the canary guard) never waits for that read, nor fails on it.
    const prereqsChanged = JSON.stringify(next.state.prerequisites ?? []) !== JSON.stringify(current.prerequisites ?? []);
    const check = validateFlagState(
      next.state,
      definitionOf(flag),
      await segmentKeys(w.tx),
      prereqsChanged ? await prerequisiteFlags(w.tx, environment) : undefined,
    );
    if (!check.ok) throw invalid(check.issues);
    await w.tx.run(SQL.updateState, [
      JSON.stringify(check.value),
      next.killedAt !== undefined ? next.killedAt : nullableNumber(row.killed_at),
      next.killReason !== undefined ? next.killReason : row.kill_reason,
      next.panicSavedState !== undefined ? (next.panicSavedState === null ? null : JSON.stringify(next.panicSavedState)) : row.panic_saved_state,
      w.now,
      environment,
      key,
    ]);
    const after = this.stateResource((await w.tx.get<FlagStateRow>(SQL.state, [environment, key]))!);
    const action = options.action ?? 'flag-state.update';
    await recordVersion(w, environment, key, after.version, check.value, action, reason);
    w.audit({
      action,
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

  /**
   * A state as a PUT sends it (read-only members ignored), validated by the core against the flag: what `putState`
   * stores, and what a change request holds (change-request-store.ts). Throws `invalid` (with the issues) or `not-found`.
   */
  async validateInput(key: string, input: unknown, sql: Sql = this.store): Promise<StoredFlagState> {
    const flag = await sql.get<FlagRow>(SQL.flag, [key]);
    if (!flag) throw notFound(`No flag "${key}".`);
    const v = validateFlagState(stripReadOnly(input), definitionOf(flag), await segmentKeys(sql));
    if (!v.ok) throw invalid(v.issues);
    return v.value;
  }

  /** Replaces a flag's state in an environment (validated by the core). Clears any panic hold on it. */
  async putState(
    actor: Actor,
    environment: string,
    key: string,
    input: unknown,
    precondition?: Precondition,
    reason: string | null = null,
  ): Promise<StateWriteResult> {
    const state = await this.validateInput(key, input);
    return this.updateFlagState(environment, key, replaceWith(state), actor, reason, { action: 'flag-state.update', precondition });
  }

  /**
   * Writes version `version`'s state (from the history) as a new version, audited as `flag-state.revert`. Like a PUT:
   * clears a panic hold, and ends a kill when the old state is enabled. A state that no longer validates (a segment or
   * variant it names is gone) is refused as a conflict naming the issues.
   */
  async revert(
    actor: Actor,
    environment: string,
    key: string,
    version: number,
    reason: string | null,
    precondition?: Precondition,
  ): Promise<StateWriteResult> {
    const { value, versions } = await this.writer.write(actor, async (w) => {
      const flag = await w.tx.get<FlagRow>(SQL.flag, [key]);
      if (!flag) throw notFound(`No flag "${key}".`);
      if (!(await w.tx.get(SQL.envExists, [environment]))) throw notFound(`No environment "${environment}".`);
      const stored = await historyVersion(w.tx, environment, key, version);
      if (!stored) throw notFound(`Flag "${key}" has no version ${version} in "${environment}".`);
      const check = validateFlagState(stored, definitionOf(flag), await segmentKeys(w.tx));
      if (!check.ok) throw conflict(`Version ${version} no longer validates (${invalid(check.issues).message}).`, check.issues);
      const state = check.value;
      return this.mutateState(
        w,
        environment,
        key,
        (cur) => ({ state, ...(state.enabled || cur.enabled ? { killedAt: null, killReason: null } : {}), panicSavedState: null }),
        reason,
        { action: 'flag-state.revert', precondition },
      );
    });
    return { ...value, environmentVersion: versions.get(environment) ?? value.environmentVersion };
  }

  /**
   * The kill switch: `enabled: false`. Idempotent: killing a disabled flag changes nothing. `guard` runs first inside
   * the write (a trigger re-checks itself and counts the firing there: server/storage/trigger-store.ts).
   */
  kill(
    actor: Actor,
    environment: string,
    key: string,
    reason: string | null,
    options: Pick<StateWriteOptions, 'guard'> = {},
  ): Promise<StateWriteResult> {
    return this.updateFlagState(
      environment,
      key,
      (cur, now) => (cur.enabled ? { state: { ...storedOf(cur), enabled: false }, killedAt: now, killReason: reason } : null),
      actor,
      reason,
      { action: 'flag.kill', ...options },
    );
  }

  /** Undoes the kill switch: `enabled: true`. Idempotent. Clears a panic hold on this flag. `guard`: as for `kill`. */
  revive(
    actor: Actor,
    environment: string,
    key: string,
    reason: string | null,
    options: Pick<StateWriteOptions, 'guard'> = {},
  ): Promise<StateWriteResult> {
    return this.updateFlagState(
      environment,
      key,
      (cur) => (cur.enabled ? null : { state: { ...storedOf(cur), enabled: true }, killedAt: null, killReason: null, panicSavedState: null }),
      actor,
      reason,
      { action: 'flag.revive', ...options },
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
      if (!(await w.tx.get(SQL.envExists, [environment]))) throw notFound(`No environment "${environment}".`);
      const killed: string[] = [];
      const spared: string[] = [];
      for (const row of await w.tx.all<FlagStateRow & { archived: number | boolean }>(SQL.statesOfEnv, [environment])) {
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
      if (!(await w.tx.get(SQL.envExists, [environment]))) throw notFound(`No environment "${environment}".`);
      const revived: string[] = [];
      for (const row of await w.tx.all<FlagStateRow & { archived: number | boolean }>(SQL.statesOfEnv, [environment])) {
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
    for (const s of await sql.all<FlagStateRow>(SQL.states)) {
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

/** The mutation of a PUT: the whole state replaced; a PUT also ends a kill it turns on, and takes over from a panic hold. */
export function replaceWith(state: StoredFlagState): StateMutation {
  return (cur) => ({
    state,
    // Turning a killed flag back on by a PUT ends the kill; a PUT is an operator taking over from a panic.
    ...(state.enabled ? { killedAt: null, killReason: null } : cur.enabled ? { killedAt: null, killReason: null } : {}),
    panicSavedState: null,
  });
}

export function nullableNumber(v: number | null): number | null {
  return v === null ? null : Number(v);
}

/** The stored part of a state (what a write keeps; every field, prerequisites included). */
export function storedOf(s: FlagState): StoredFlagState {
  return {
    enabled: s.enabled,
    offVariant: s.offVariant,
    ...(s.prerequisites !== undefined && s.prerequisites.length > 0 ? { prerequisites: s.prerequisites } : {}),
    targets: s.targets,
    rules: s.rules,
    fallthrough: s.fallthrough,
  };
}

/** Read-only members a client may echo back from a GET; they are ignored on PUT. */
const READ_ONLY_STATE_FIELDS = new Set([
  'version',
  'flag',
  'environment',
  'killedAt',
  'killReason',
  'panicked',
  'updatedAt',
  'environmentVersion',
  'lifecycle',
]);

/** A state input without the read-only members of a GET answer (a PUT, a schedule's `state`, take it echoed back). */
export function stripReadOnly(input: unknown): unknown {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return input;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) if (!READ_ONLY_STATE_FIELDS.has(k)) out[k] = v;
  return out;
}

function stateJson(s: FlagStateResource): JsonValue {
  return { ...storedOf(s), version: s.version, killedAt: s.killedAt, killReason: s.killReason, panicked: s.panicked } as unknown as JsonValue;
}
