/**
 * The Aviary flag model (CONTRACT §1–§2). Field names marked fixed in the contract are promises to users:
 * do not rename them. This file is pure types, shared by the server and every SDK build.
 */

/** Any JSON value: what a variant of a `json` flag may hold. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A primitive attribute value of a context. */
export type AttributeScalar = string | number | boolean;

/** A context attribute: a scalar, or an array of scalars (an array matches if any element does). */
export type AttributeValue = AttributeScalar | readonly AttributeScalar[];

/**
 * Who or what a flag is evaluated for. `key` identifies the context (targets match it, rollouts bucket by it by
 * default); every other property is an attribute that rules can test.
 */
export interface EvaluationContext {
  key?: string;
  [attribute: string]: AttributeValue | undefined;
}

/** The value type of a flag's variants. */
export type FlagKind = 'boolean' | 'string' | 'number' | 'json';

/** One named value a flag can serve. */
export interface Variant {
  key: string;
  value: JsonValue;
  description?: string;
}

/** A flag's definition, shared by every environment. */
export interface FlagDefinition {
  /** Fixed pattern `^[a-z0-9][a-z0-9._-]{0,127}$`. */
  key: string;
  kind: FlagKind;
  /** Ordered: rollouts, UIs and reports list variants in this order. */
  variants: Variant[];
  description?: string;
  tags?: string[];
  archived?: boolean;
}

/** One variant's share of a rollout, in percent (0–100, at most three decimals). */
export interface Weight {
  variant: string;
  percent: number;
}

/** A percentage split, placed by `bucket = murmur3(salt + "/" + String(context[bucketBy])) mod 100000`. */
export interface Rollout {
  weights: Weight[];
  /** Attribute to bucket by (default `key`). */
  bucketBy?: string;
  /** Hash salt (default: the flag key). Flags sharing a salt form a release ring. */
  salt?: string;
}

/** What a rule, target or the fallthrough serves: one variant, or a rollout. */
export type Serve = { variant: string } | { rollout: Rollout };

/** Condition operators (fixed names). */
export type Operator =
  | 'in'
  | 'startsWith'
  | 'endsWith'
  | 'contains'
  | 'matches'
  | 'lt'
  | 'lte'
  | 'gt'
  | 'gte'
  | 'semverEq'
  | 'semverLt'
  | 'semverGt'
  | 'before'
  | 'after'
  | 'exists';

export const OPERATORS: readonly Operator[] = [
  'in',
  'startsWith',
  'endsWith',
  'contains',
  'matches',
  'lt',
  'lte',
  'gt',
  'gte',
  'semverEq',
  'semverLt',
  'semverGt',
  'before',
  'after',
  'exists',
];

/** A test on one context attribute. Holds if the attribute matches any of `values`. */
export interface AttributeCondition {
  attribute: string;
  op: Operator;
  /** Absent (or empty) only for `exists`. */
  values?: AttributeScalar[];
  negate?: boolean;
}

/** Membership of a segment (cohort). */
export interface SegmentCondition {
  segment: string;
  negate?: boolean;
}

export type Condition = AttributeCondition | SegmentCondition;

/** A targeting rule: all conditions must hold; rules are tried in order, the first match serves. */
export interface Rule {
  id: string;
  description?: string;
  conditions: Condition[];
  serve: Serve;
}

/** Individual context keys pinned to a variant. */
export interface Target {
  variant: string;
  keys: string[];
}

/**
 * A flag another flag requires (CONTRACT §12): evaluated for the same context in the same environment, it must serve
 * one of `variants`, otherwise the requiring flag serves its `offVariant` with reason PREREQUISITE_FAILED.
 */
export interface Prerequisite {
  /** The required flag's key. */
  flag: string;
  /** The variants of that flag that satisfy the requirement (at least one). */
  variants: string[];
}

/** A flag's state in one environment (fixed field names). */
export interface FlagState {
  /** `false` is the kill switch: every evaluation serves `offVariant` with reason OFF. */
  enabled: boolean;
  offVariant: string;
  /** Checked after the kill switch, before targets, in order: the first that fails decides (absent: none). */
  prerequisites?: Prerequisite[];
  targets: Target[];
  rules: Rule[];
  fallthrough: Serve;
  /** Bumped on every change of this flag's state in this environment. */
  version: number;
}

/** What an SDK needs to evaluate one flag in one environment: the definition plus that environment's state. */
export interface FlagConfig extends FlagDefinition {
  state: FlagState;
}

/** A rule of a segment: all its conditions must hold (segment conditions are not allowed inside segments). */
export interface SegmentRule {
  id?: string;
  conditions: AttributeCondition[];
}

/** A cohort, shared by all environments. */
export interface Segment {
  key: string;
  description?: string;
  /** Always in the segment. */
  included: string[];
  /** Never in the segment through its rules (an included key still wins). */
  excluded: string[];
  /** A context not excluded is in the segment if any rule matches. */
  rules: SegmentRule[];
}

/** Everything an SDK evaluates against: one environment's flags and the segments they use. */
export interface EnvironmentSnapshot {
  environment: string;
  /** The environment's version counter: bumped by every change visible to SDKs, in commit order. */
  version: number;
  flags: FlagConfig[];
  segments: Segment[];
}

/**
 * One change visible to SDKs, as the server records it in its change log and streams it (`sdk/protocol.ts`
 * re-exports it). Segments are shared by all environments, so a segment change reaches each of them.
 */
export type Change =
  | { type: 'flag.upsert'; flag: FlagConfig }
  | { type: 'flag.delete'; key: string }
  | { type: 'segment.upsert'; segment: Segment }
  | { type: 'segment.delete'; key: string }
  // Relay audience only (docs/stream-protocol.md): the server never sends these to SDKs, and the core ignores them.
  | { type: 'key.upsert'; key: StreamKey }
  | { type: 'key.delete'; id: string };

/**
 * A credential a relay checks locally, as streamed to relays (never to SDKs): the SHA-256 (hex) of an SDK key or of
 * a relay token covering the environment, never the secret.
 */
export interface StreamKey {
  id: string;
  kind: 'sdk' | 'relay';
  /** SHA-256 of the secret, hex. */
  hash: string;
  /** Relay tokens: their name (the `via` path of receipts). */
  name: string;
  /** SDK keys only: a client-side (public) key. */
  clientSide: boolean;
  /** Epoch ms, or null: never expires. */
  expiresAt: number | null;
  /** Relay tokens: the environments they cover (null: all). SDK keys: their one environment. */
  environments: string[] | null;
}

/** The changes one committed write made to one environment, and the environment version it produced. */
export interface Delta {
  version: number;
  changes: Change[];
}

/** Why an evaluation returned what it did (fixed kinds, CONTRACT §2). */
export type ReasonKind = 'OFF' | 'TARGET_MATCH' | 'RULE_MATCH' | 'FALLTHROUGH' | 'ERROR' | 'PREREQUISITE_FAILED';

/** Error codes carried by reason `ERROR`. */
export type ErrorCode = 'FLAG_NOT_FOUND' | 'WRONG_TYPE' | 'MALFORMED_FLAG' | 'NOT_READY' | 'GENERAL';

export interface EvaluationReason {
  kind: ReasonKind;
  /** RULE_MATCH: the matching rule's id and position. */
  ruleId?: string;
  ruleIndex?: number;
  /** Set when a rollout placed the context. */
  inRollout?: true;
  /** The context's bucket (0–99999) when a rollout placed it. */
  bucket?: number;
  /** The rollout's `bucketBy` attribute was missing: `offVariant` was served. */
  bucketByMissing?: true;
  /** ERROR only. */
  errorCode?: ErrorCode;
  /** PREREQUISITE_FAILED only: the key of the first prerequisite that failed. */
  prerequisiteKey?: string;
}

/** The result of an evaluation, shaped like OpenFeature's resolution details. */
export interface EvaluationDetail<T = JsonValue> {
  value: T;
  /** The served variant's key; absent when the caller's default was returned. */
  variant?: string;
  reason: EvaluationReason;
  /** Same as `reason.errorCode`, at the top level as OpenFeature has it. */
  errorCode?: ErrorCode;
}

/** A validation problem, addressed by a JSON-pointer-like path (`/rules/2/conditions/0/values/1`). */
export interface ValidationIssue {
  path: string;
  message: string;
}
