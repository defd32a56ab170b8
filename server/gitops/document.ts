/**
 * The flags-as-code document (docs/flags-as-code.md, schemas/aviary.schema.json): every segment, flag and flag state
 * as one JSON value, in a stable order (segments and flags by key, environments by key, members in a fixed order) so
 * that its YAML diffs cleanly in a pull request. Read-only notes (`killed`, `panicked`, `canary`) say what the server
 * did that the file does not set; apply ignores them.
 */
import type { FlagDefinition, JsonValue, Segment } from '@aviary/sdk/core';
import type { StoredFlagState } from '../storage/schema.js';

/** The document's format version (the `version:` header). */
export const DOCUMENT_VERSION = 1;

/** A running or paused canary's read-only note on the state it manages. */
export interface CanaryNote {
  state: string;
  control: string;
  canary: string;
  stage: number;
  percent: number;
}

/** A flag's state in one environment as the document holds it. */
export interface DocumentState {
  enabled: boolean;
  /** Read-only: the kill switch was thrown (when, why). */
  killed?: { at: string; reason: string | null };
  /** Read-only: held off by kill-all (revive-all restores it). */
  panicked?: boolean;
  /** Read-only: a running or paused canary manages this state; apply refuses to change it. */
  canary?: CanaryNote;
  offVariant: string;
  prerequisites?: StoredFlagState['prerequisites'];
  targets?: StoredFlagState['targets'];
  rules?: StoredFlagState['rules'];
  fallthrough: StoredFlagState['fallthrough'];
}

/** A flag as the document holds it: its definition, then its state per environment (omitted for archived flags). */
export interface DocumentFlag {
  key: string;
  kind: FlagDefinition['kind'];
  description?: string;
  tags?: string[];
  archived?: boolean;
  variants?: FlagDefinition['variants'];
  environments?: Record<string, DocumentState>;
}

export interface DocumentSegment {
  key: string;
  description?: string;
  included?: string[];
  excluded?: string[];
  rules?: Segment['rules'];
}

/** The whole document. */
export interface AviaryDocument {
  version: number;
  segments?: DocumentSegment[];
  flags?: DocumentFlag[];
}

const byKey = <T extends { key: string }>(a: T, b: T) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** A segment in document order. */
export function documentSegment(s: Segment & { description?: string }): DocumentSegment {
  return {
    key: s.key,
    description: s.description ?? '',
    included: s.included,
    excluded: s.excluded,
    rules: s.rules.map((r) => ({
      ...(r.id !== undefined ? { id: r.id } : {}),
      conditions: r.conditions.map((c) => orderedCondition(c) as typeof c),
    })),
  };
}

/** A stored state (plus its bookkeeping) in document order. */
export function documentState(
  stored: StoredFlagState,
  notes: { killedAt?: string | null; killReason?: string | null; panicked?: boolean; canary?: CanaryNote | null } = {},
): DocumentState {
  return {
    enabled: stored.enabled,
    ...(!stored.enabled && notes.killedAt ? { killed: { at: notes.killedAt, reason: notes.killReason ?? null } } : {}),
    ...(notes.panicked ? { panicked: true } : {}),
    ...(notes.canary ? { canary: notes.canary } : {}),
    offVariant: stored.offVariant,
    ...(stored.prerequisites?.length ? { prerequisites: stored.prerequisites } : {}),
    targets: stored.targets,
    rules: stored.rules.map(orderedRule),
    fallthrough: orderedServe(stored.fallthrough),
  };
}

type Rule = StoredFlagState['rules'][number];
type Serve = StoredFlagState['fallthrough'];
type Condition = Rule['conditions'][number];

/** A rule's members in reading order: id, description, conditions, serve. */
function orderedRule(r: Rule): Rule {
  return {
    id: r.id,
    ...(r.description !== undefined ? { description: r.description } : {}),
    conditions: r.conditions.map(orderedCondition),
    serve: orderedServe(r.serve),
  };
}

function orderedCondition(c: Condition): Condition {
  if ('segment' in c) return { segment: c.segment, ...(c.negate !== undefined ? { negate: c.negate } : {}) };
  return {
    attribute: c.attribute,
    op: c.op,
    ...(c.values !== undefined ? { values: c.values } : {}),
    ...(c.negate !== undefined ? { negate: c.negate } : {}),
  } as Condition;
}

/** A serve's members in reading order: a variant, or a rollout's bucketBy, salt, then weights. */
function orderedServe(s: Serve): Serve {
  if ('variant' in s) return { variant: s.variant };
  const r = s.rollout;
  return {
    rollout: {
      ...(r.bucketBy !== undefined ? { bucketBy: r.bucketBy } : {}),
      ...(r.salt !== undefined ? { salt: r.salt } : {}),
      weights: r.weights.map((w) => ({ variant: w.variant, percent: w.percent })),
    },
  };
}

/** The state a document entry asks for (read-only notes dropped), in the stored shape. */
export function desiredState(s: DocumentState): StoredFlagState {
  return {
    enabled: s.enabled,
    offVariant: s.offVariant,
    ...(s.prerequisites?.length ? { prerequisites: s.prerequisites } : {}),
    targets: s.targets ?? [],
    rules: s.rules ?? [],
    fallthrough: s.fallthrough,
  };
}

/** A flag in document order. */
export function documentFlag(
  f: FlagDefinition & { description: string; tags: string[]; archived: boolean },
  environments: Record<string, DocumentState> | null,
): DocumentFlag {
  const envs: Record<string, DocumentState> = {};
  if (environments) for (const k of Object.keys(environments).sort()) envs[k] = environments[k]!;
  return {
    key: f.key,
    kind: f.kind,
    description: f.description,
    tags: f.tags,
    ...(f.archived ? { archived: true } : {}),
    variants: f.variants,
    ...(environments ? { environments: envs } : {}),
  };
}

/** The document, sorted. */
export function assemble(segments: DocumentSegment[], flags: DocumentFlag[]): AviaryDocument {
  return { version: DOCUMENT_VERSION, segments: [...segments].sort(byKey), flags: [...flags].sort(byKey) };
}

/** A value with object members in sorted order (for comparisons that must not depend on member order). */
export function canonical(v: unknown): JsonValue {
  if (Array.isArray(v)) return v.map(canonical);
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, JsonValue> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = canonical(x);
    }
    return out;
  }
  return v as JsonValue;
}
