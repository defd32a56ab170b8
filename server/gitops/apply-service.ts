/**
 * Flags as code on the server: the export (one consistent read of every segment, flag and state), the plan (what
 * applying a document would change, each change with the ETag of what it is based on, and a fingerprint over them),
 * and the apply: the plan computed and carried out in ONE writer transaction, through the same store methods (and so
 * the same validation and messages) as the individual routes, so a bad entry anywhere changes nothing and SDKs see
 * one consistent version. A dry run is the same transaction, rolled back. Promote (one state copied between
 * environments) is here too. Routes: gitops-routes.ts; the format: docs/flags-as-code.md.
 */
import { createHash } from 'node:crypto';
import type { FlagDefinition, JsonValue } from '@aviary/sdk/core';
import { CanaryStore } from '../canary/canary-store.js';
import { percentAt } from '../canary/document.js';
import { CANARY_RULE_PREFIX } from '../canary/flag-render.js';
import { apiTimeOrNull } from '../openapi/time.js';
import { validateFlagDefinition, validateFlagState, validateSegment } from '../storage/core-api.js';
import type { FlagDefinitionStore } from '../storage/flag-definition-store.js';
import { nullableNumber, replaceWith, storedOf, type FlagStateStore } from '../storage/flag-state-store.js';
import { bool, type Sql, type StorePort } from '../storage/port.js';
import type { Precondition } from '../storage/preconditions.js';
import type { EnvironmentRow, FlagRow, FlagStateRow, SegmentRow } from '../storage/rows.js';
import type { StoredFlagState } from '../storage/schema.js';
import type { SegmentStore } from '../storage/segment-store.js';
import { stateDiff, type StateChange } from '../storage/state-diff.js';
import { conflict, invalid, notFound, StoreError } from '../storage/store-errors.js';
import type { Actor, WriteContext, Writer } from '../storage/writer.js';
import {
  assemble,
  canonical,
  desiredState,
  documentFlag,
  documentSegment,
  documentState,
  DOCUMENT_VERSION,
  type AviaryDocument,
  type CanaryNote,
  type DocumentFlag,
  type DocumentSegment,
  type DocumentState,
} from './document.js';

/** One change a plan holds. `path` is the JSON pointer of its entry in the document; `etag` what it is based on. */
export interface PlanChange {
  action: 'create' | 'update' | 'delete' | 'archive' | 'unarchive';
  resource: 'segment' | 'flag' | 'state';
  key: string;
  environment?: string;
  path: string;
  /** The resource's ETag when planned (`r<revision>` for flags and segments, `v<version>` for states); null: new. */
  etag: string | null;
  /** Field by field, as JSON pointers into the entry (`/rules/0/serve/variant`). */
  fields: StateChange[];
}

export interface PlanResult {
  changes: PlanChange[];
  /** A hash of every change and the ETags it is based on: `If-Match` of an apply made from this plan. */
  fingerprint: string;
}

/** Thrown to roll a dry run's transaction back, carrying its result. */
class DryRun extends Error {
  constructor(readonly result: PlanResult) {
    super('dry run');
  }
}

const SQL = {
  flags: 'SELECT * FROM flags ORDER BY key',
  segments: 'SELECT * FROM segments ORDER BY key',
  states: 'SELECT * FROM flag_states ORDER BY flag, environment',
  environments: 'SELECT * FROM environments ORDER BY key',
  flag: 'SELECT * FROM flags WHERE key = ?',
  state: 'SELECT * FROM flag_states WHERE environment = ? AND flag = ?',
  env: 'SELECT * FROM environments WHERE key = ?',
};

/** The fingerprint of a list of changes (order matters: it is the order they are carried out in). */
export function fingerprintOf(changes: PlanChange[]): string {
  const h = createHash('sha256');
  h.update(JSON.stringify(changes.map((c) => [c.action, c.resource, c.key, c.environment ?? null, c.etag, canonical(c.fields)])));
  return `sha256:${h.digest('hex').slice(0, 32)}`;
}

/** A store error re-addressed to the document entry it came from (paths prefixed, the entry named in the message). */
function atEntry(e: unknown, path: string, name: string): unknown {
  if (!(e instanceof StoreError)) return e;
  return new StoreError(
    e.kind,
    `${name}: ${e.message}`,
    e.issues.map((i) => ({ path: `${path}${i.path}`, message: i.message })),
    { ...e.details, entry: path },
  );
}

/** A write context whose audit entries carry `reason` (the stores' definition and segment writes take none). */
function withReason(w: WriteContext, reason: string | null): WriteContext {
  return { ...w, audit: (e) => w.audit({ ...e, reason: e.reason ?? reason }) };
}

const flagDoc = (r: FlagRow) => ({
  key: r.key,
  kind: r.kind,
  variants: JSON.parse(r.variants) as FlagDefinition['variants'],
  description: r.description,
  tags: JSON.parse(r.tags) as string[],
  archived: bool(r.archived),
});

const segmentDoc = (r: SegmentRow): DocumentSegment =>
  documentSegment({
    key: r.key,
    description: r.description,
    included: JSON.parse(r.included) as string[],
    excluded: JSON.parse(r.excluded) as string[],
    rules: JSON.parse(r.rules) as DocumentSegment['rules'] & object,
  });

export class GitopsService {
  private readonly canaries: CanaryStore;

  constructor(
    private readonly store: StorePort,
    private readonly writer: Writer,
    private readonly flags: FlagDefinitionStore,
    private readonly states: FlagStateStore,
    private readonly segments: SegmentStore,
  ) {
    this.canaries = new CanaryStore(store);
  }

  /** Running and paused canaries as notes, by `<env>\0<flag>`. */
  private async canaryNotes(sql: Sql): Promise<Map<string, CanaryNote>> {
    const out = new Map<string, CanaryNote>();
    for (const { environment, flag, run } of await this.canaries.active(sql)) {
      out.set(`${environment}\0${flag}`, {
        state: run.state,
        control: run.document.control,
        canary: run.document.canary,
        stage: run.stage,
        percent: percentAt(run.document, run.stage),
      });
    }
    return out;
  }

  /** Every segment, flag and state (of `environments`, or all), in one consistent read. */
  async export(environments?: string[]): Promise<AviaryDocument> {
    return this.store.transaction(
      async (tx) => {
        const envs = (await tx.all<EnvironmentRow>(SQL.environments)).map((e) => e.key);
        for (const e of environments ?? []) if (!envs.includes(e)) throw notFound(`No environment "${e}".`);
        const only = new Set(environments?.length ? environments : envs);
        const notes = await this.canaryNotes(tx);
        const statesByFlag = new Map<string, Record<string, DocumentState>>();
        for (const s of await tx.all<FlagStateRow>(SQL.states)) {
          if (!only.has(s.environment)) continue;
          let m = statesByFlag.get(s.flag);
          if (!m) statesByFlag.set(s.flag, (m = {}));
          m[s.environment] = documentState(JSON.parse(s.state) as StoredFlagState, {
            killedAt: apiTimeOrNull(nullableNumber(s.killed_at)),
            killReason: s.kill_reason,
            panicked: s.panic_saved_state !== null,
            canary: notes.get(`${s.environment}\0${s.flag}`) ?? null,
          });
        }
        const flags = (await tx.all<FlagRow>(SQL.flags)).map((r) => {
          const f = flagDoc(r);
          // An archived flag's states are frozen (no write may change them): the document holds its definition only.
          return documentFlag(f, f.archived ? null : (statesByFlag.get(r.key) ?? {}));
        });
        return assemble((await tx.all<SegmentRow>(SQL.segments)).map(segmentDoc), flags);
      },
      { readOnly: true },
    );
  }

  /** What applying `doc` would change (computed in a transaction that is rolled back; same checks as an apply). */
  async plan(actor: Actor, doc: AviaryDocument): Promise<PlanResult> {
    return this.apply(actor, doc, { dryRun: true, reason: null, prune: true });
  }

  /**
   * Plans and applies `doc` in one writer transaction. `ifMatch`: the fingerprint of the plan the caller saw; any
   * difference (something it touches changed since, so the changes or their ETags differ) is refused with
   * `onMismatch` and nothing changes. With `dryRun` everything runs and is then rolled back.
   */
  async apply(
    actor: Actor,
    doc: AviaryDocument,
    options: {
      dryRun: boolean;
      reason: string | null;
      /** Archive the flags and delete the segments the document does not list (default). False: leave them alone. */
      prune?: boolean;
      ifMatch?: string[];
      onMismatch?: (current: PlanResult) => Error;
    },
  ): Promise<PlanResult & { versions: Record<string, number> }> {
    try {
      const { value, versions } = await this.writer.write(actor, async (w) => {
        const plan = await this.computePlan(w.tx, doc, options.prune ?? true);
        if (options.ifMatch && !options.ifMatch.includes('*') && !options.ifMatch.includes(plan.fingerprint)) {
          throw options.onMismatch ? options.onMismatch(plan) : conflict('The server changed since the plan; plan again.');
        }
        await this.carryOut(withReason(w, options.reason), doc, plan.changes, options.reason);
        if (options.dryRun) throw new DryRun(plan);
        if (plan.changes.length > 0) {
          w.audit({
            action: 'flags-as-code.apply',
            resourceType: 'document',
            resourceKey: plan.fingerprint,
            after: { changes: plan.changes.map((c) => ({ action: c.action, resource: c.resource, key: c.key, environment: c.environment ?? null })) },
            reason: options.reason,
          });
        }
        return plan;
      });
      return { ...value, versions: Object.fromEntries(versions) };
    } catch (e) {
      if (e instanceof DryRun) return { ...e.result, versions: {} };
      throw e;
    }
  }

  /** The changes, in the order they are carried out: segments in, flags in, states, flags archived, segments out. */
  private async computePlan(sql: Sql, doc: AviaryDocument, prune: boolean): Promise<PlanResult> {
    if (doc.version !== DOCUMENT_VERSION) throw invalid([{ path: '/version', message: `must be ${DOCUMENT_VERSION}` }]);
    const docSegments = doc.segments ?? [];
    const docFlags = doc.flags ?? [];
    duplicates(docSegments, '/segments');
    duplicates(docFlags, '/flags');
    const segRows = new Map((await sql.all<SegmentRow>(SQL.segments)).map((r) => [r.key, r]));
    const flagRows = new Map((await sql.all<FlagRow>(SQL.flags)).map((r) => [r.key, r]));
    const stateRows = new Map((await sql.all<FlagStateRow>(SQL.states)).map((r) => [`${r.environment}\0${r.flag}`, r]));
    const envs = new Map((await sql.all<EnvironmentRow>(SQL.environments)).map((e) => [e.key, e]));
    const notes = await this.canaryNotes(sql);
    const segIn: PlanChange[] = [];
    const segOut: PlanChange[] = [];
    const flagIn: PlanChange[] = [];
    const flagOut: PlanChange[] = [];
    const stateChanges: PlanChange[] = [];

    docSegments.forEach((s, i) => {
      const path = `/segments/${i}`;
      const want = normalizedSegment(s);
      const row = segRows.get(s.key);
      if (!row) {
        segIn.push({ action: 'create', resource: 'segment', key: s.key, path, etag: null, fields: stateDiff({}, want) });
        return;
      }
      const fields = stateDiff(normalizedSegment(segmentDoc(row)), want);
      if (fields.length) segIn.push({ action: 'update', resource: 'segment', key: s.key, path, etag: `r${row.revision}`, fields });
    });
    const named = new Set(docSegments.map((s) => s.key));
    for (const [key, row] of segRows) {
      if (prune && !named.has(key))
        segOut.push({ action: 'delete', resource: 'segment', key, path: '/segments', etag: `r${row.revision}`, fields: [] });
    }

    docFlags.forEach((f, i) => {
      const path = `/flags/${i}`;
      const row = flagRows.get(f.key);
      const want = definitionOf(f);
      if (!row) {
        flagIn.push({ action: 'create', resource: 'flag', key: f.key, path, etag: null, fields: stateDiff({}, want as unknown as JsonValue) });
      } else {
        const have = flagDoc(row);
        const fields = stateDiff(
          canonical({ kind: have.kind, description: have.description, tags: have.tags, variants: have.variants }),
          canonical({ kind: want.kind, description: want.description, tags: want.tags, variants: want.variants }),
        );
        if (have.archived && !want.archived) {
          flagIn.push({
            action: 'unarchive',
            resource: 'flag',
            key: f.key,
            path,
            etag: `r${row.revision}`,
            fields: [{ op: 'replace', path: '/archived', before: true, after: false }, ...fields],
          });
        } else if (fields.length) flagIn.push({ action: 'update', resource: 'flag', key: f.key, path, etag: `r${row.revision}`, fields });
        if (!have.archived && want.archived) {
          flagOut.push({
            action: 'archive',
            resource: 'flag',
            key: f.key,
            path,
            etag: `r${row.revision}`,
            fields: [{ op: 'replace', path: '/archived', before: false, after: true }],
          });
        }
      }
      if (want.archived) {
        if (f.environments && Object.keys(f.environments).length) {
          throw invalid([{ path: `${path}/environments`, message: 'an archived flag has no states to manage; remove them or un-archive it' }]);
        }
        return;
      }
      for (const env of Object.keys(f.environments ?? {}).sort()) {
        const entry = f.environments![env]!;
        const epath = `${path}/environments/${pointerToken(env)}`;
        if (!envs.has(env)) throw notFound(`flag "${f.key}" in "${env}": no environment "${env}" (${epath}).`);
        const desired = desiredState(entry);
        const stateRow = stateRows.get(`${env}\0${f.key}`);
        const current = stateRow ? (JSON.parse(stateRow.state) as StoredFlagState) : null;
        const fields = stateDiff(
          current ? (documentState(current) as unknown as JsonValue) : {},
          documentState(normalizedState(desired, f, want, named)) as unknown as JsonValue,
        ).filter((c) => !isDefaultedRemoval(c));
        if (current && fields.length === 0) continue;
        if (!current && row) throw notFound(`Flag "${f.key}" has no state in "${env}".`);
        const note = notes.get(`${env}\0${f.key}`);
        if (note && current) {
          // The canary owns its cohort rules and the fallthrough. A file exported while it ran (it carries the
          // `canary:` note) holds some earlier stage of them: not a change. Anything else the file changes is refused.
          const operatorFields = stateDiff(operatorPart(current), operatorPart(normalizedState(desired, f, want, named))).filter(
            (c) => !isDefaultedRemoval(c),
          );
          if (operatorFields.length === 0 && entry.canary !== undefined) continue;
          throw new StoreError(
            'conflict',
            `flag "${f.key}" in "${env}": its state is managed by a ${note.state} canary (${note.canary} at ${note.percent}%); ` +
              'leave the state as exported, or promote, roll back or delete the canary first.',
            [{ path: epath, message: `managed by a ${note.state} canary` }],
            { entry: epath },
          );
        }
        if (bool(envs.get(env)!.require_approval)) {
          throw new StoreError(
            'conflict',
            `flag "${f.key}" in "${env}": "${env}" requires approval for state changes; propose it as a change request instead.`,
            [{ path: epath, message: 'the environment requires approval' }],
            { entry: epath },
          );
        }
        stateChanges.push({
          action: current ? 'update' : 'create',
          resource: 'state',
          key: f.key,
          environment: env,
          path: epath,
          etag: stateRow ? `v${stateRow.version}` : null,
          fields,
        });
      }
    });
    const flagNamed = new Set(docFlags.map((f) => f.key));
    for (const [key, row] of flagRows) {
      if (prune && !flagNamed.has(key) && !bool(row.archived)) {
        flagOut.push({
          action: 'archive',
          resource: 'flag',
          key,
          path: '/flags',
          etag: `r${row.revision}`,
          fields: [{ op: 'replace', path: '/archived', before: false, after: true }],
        });
      }
    }
    const changes = [...segIn, ...flagIn, ...stateChanges, ...flagOut, ...segOut];
    return { changes, fingerprint: fingerprintOf(changes) };
  }

  /** Carries the changes out through the stores, each error re-addressed to its entry. */
  private async carryOut(w: WriteContext, doc: AviaryDocument, changes: PlanChange[], reason: string | null): Promise<void> {
    const entryAt = (path: string): unknown => {
      let v: unknown = doc;
      for (const t of path.split('/').slice(1)) v = (v as Record<string, unknown>)[t.replace(/~1/g, '/').replace(/~0/g, '~')];
      return v;
    };
    for (const c of changes) {
      const name = c.resource === 'state' ? `flag "${c.key}" in "${c.environment}"` : `${c.resource} "${c.key}"`;
      try {
        if (c.resource === 'segment') {
          if (c.action === 'delete') await this.segments.deleteIn(w, c.key);
          else await this.segments.putIn(w, c.key, this.segments.validateInput(c.key, entryAt(c.path)));
        } else if (c.resource === 'flag') {
          const f = c.action === 'archive' && c.path === '/flags' ? null : (entryAt(c.path) as DocumentFlag);
          if (c.action === 'create') {
            const v = validateFlagDefinition(definitionOf(f!));
            if (!v.ok) throw invalid(v.issues);
            await this.flags.createIn(w, v.value);
          } else if (c.action === 'archive') await this.flags.patchIn(w, c.key, { archived: true });
          else {
            const def = definitionOf(f!);
            await this.flags.patchIn(w, c.key, {
              kind: def.kind,
              description: def.description,
              tags: def.tags,
              variants: def.variants,
              ...(c.action === 'unarchive' ? { archived: false } : {}),
            });
          }
        } else {
          const state = await this.states.validateInput(c.key, desiredState(entryAt(c.path) as DocumentState), w.tx);
          await this.states.mutateState(w, c.environment!, c.key, replaceWith(state), reason, { action: 'flag-state.update' });
        }
      } catch (e) {
        throw atEntry(e, c.path, name);
      }
    }
  }

  /**
   * Copies `key`'s state from `from` to `to` (CONTRACT §15): the field-level diff, and unless `dryRun` the write
   * (audited `flag-state.promote` with `reason`; `precondition` is the target state's If-Match). A target state a
   * running canary manages is refused.
   */
  async promote(
    actor: Actor,
    key: string,
    from: string,
    to: string,
    options: { dryRun: boolean; reason: string | null; precondition?: Precondition | undefined },
  ): Promise<{ changed: boolean; fields: StateChange[]; etag: string; environmentVersion: number | null }> {
    if (from === to) throw invalid([{ path: '/to', message: 'must differ from "from"' }]);
    const run = async (w: WriteContext | null, sql: Sql) => {
      if (!(await sql.get(SQL.flag, [key]))) throw notFound(`No flag "${key}".`);
      for (const env of [from, to]) if (!(await sql.get(SQL.env, [env]))) throw notFound(`No environment "${env}".`);
      const src = await sql.get<FlagStateRow>(SQL.state, [from, key]);
      const dst = await sql.get<FlagStateRow>(SQL.state, [to, key]);
      if (!src || !dst) throw notFound(`Flag "${key}" has no state in "${src ? to : from}".`);
      options.precondition?.(Number(dst.version));
      const source = JSON.parse(src.state) as StoredFlagState;
      const fields = stateDiff(
        documentState(JSON.parse(dst.state) as StoredFlagState) as unknown as JsonValue,
        documentState(source) as unknown as JsonValue,
      );
      const notes = await this.canaryNotes(sql);
      const note = notes.get(`${to}\0${key}`);
      if (note && fields.length) {
        throw conflict(`flag "${key}" in "${to}": its state is managed by a ${note.state} canary; promote, roll back or delete the canary first.`);
      }
      // A source mid-canary holds a stage of the canary, not a state to copy.
      const sourceNote = notes.get(`${from}\0${key}`);
      if (sourceNote && fields.length) {
        throw conflict(`flag "${key}" in "${from}": its state is a ${sourceNote.state} canary's stage; promote it once the canary is finished.`);
      }
      const base = { fields, etag: `v${dst.version}` };
      if (!w || fields.length === 0) return { ...base, changed: false };
      const result = await this.states.mutateState(w, to, key, replaceWith(storedOf({ ...source, version: 0 })), options.reason, {
        action: 'flag-state.promote',
      });
      return { ...base, changed: result.changed, etag: `v${result.state.version}` };
    };
    if (options.dryRun) return { ...(await this.store.transaction((tx) => run(null, tx), { readOnly: true })), environmentVersion: null };
    const { value, versions } = await this.writer.write(actor, (w) => run(w, w.tx));
    return { ...value, environmentVersion: versions.get(to) ?? null };
  }
}

function duplicates(entries: { key: string }[], path: string): void {
  const seen = new Map<string, number>();
  entries.forEach((e, i) => {
    const first = seen.get(e.key);
    if (first !== undefined) throw invalid([{ path: `${path}/${i}/key`, message: `"${e.key}" is already defined at ${path}/${first}` }]);
    seen.set(e.key, i);
  });
}

const pointerToken = (t: string) => t.replace(/~/g, '~0').replace(/\//g, '~1');

/** The definition an entry asks for, with the defaults a create gives (a boolean flag without variants: on/off). */
function definitionOf(f: DocumentFlag): FlagDefinition & { description: string; tags: string[]; archived: boolean } {
  const v = validateFlagDefinition({ key: f.key, kind: f.kind, ...(f.variants ? { variants: f.variants } : {}) });
  const variants = v.ok ? v.value.variants : (f.variants ?? []);
  return { key: f.key, kind: f.kind, variants, description: f.description ?? '', tags: f.tags ?? [], archived: f.archived === true };
}

function normalizedSegment(s: DocumentSegment): JsonValue {
  const v = validateSegment({
    key: s.key,
    description: s.description ?? '',
    included: s.included ?? [],
    excluded: s.excluded ?? [],
    rules: s.rules ?? [],
  });
  const seg = v.ok ? v.value : s;
  return canonical({ description: seg.description ?? '', included: seg.included ?? [], excluded: seg.excluded ?? [], rules: seg.rules ?? [] });
}

/** The desired state as validation normalizes it (so spelling differences are not changes); as given when invalid. */
function normalizedState(desired: StoredFlagState, f: DocumentFlag, def: FlagDefinition, segments: Set<string>): StoredFlagState {
  const v = validateFlagState(desired, { key: f.key, kind: def.kind, variants: def.variants }, segments);
  return v.ok ? v.value : desired;
}

/** A state without what a canary manages (its cohort rules, the fallthrough). */
function operatorPart(s: StoredFlagState): JsonValue {
  const { fallthrough: _managed, ...rest } = documentState({ ...s, rules: s.rules.filter((r) => !r.id.startsWith(CANARY_RULE_PREFIX)) });
  return rest as unknown as JsonValue;
}

/** Empty optional lists in the stored shape vs absent in the document are not a change. */
function isDefaultedRemoval(c: StateChange): boolean {
  return (
    (c.op === 'remove' || c.op === 'add') &&
    c.path === '/prerequisites' &&
    Array.isArray(c.op === 'remove' ? c.before : c.after) &&
    ((c.op === 'remove' ? c.before : c.after) as unknown[]).length === 0
  );
}
