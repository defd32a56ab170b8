/**
 * The canary document (CONTRACT §4, fixed field names) and its validation. Validation returns every problem with a
 * JSON-pointer path, so the route can answer one problem+json listing them all.
 */
import type { FlagDefinition, ValidationIssue } from '@aviary/sdk/core';
import type { GuardConfig } from './stats.js';

/** A stage: a cohort (segment) that gets the canary, or a percent of the remaining traffic. */
export type CanaryStage = { segment: string } | { percent: number };

/** What an operator PUTs to start a canary. */
export interface CanaryDocument {
  /** The variant everyone else keeps, and what a rollback serves. */
  control: string;
  /** The variant being rolled out. */
  canary: string;
  /** Attribute the percent stages bucket by (default `key`). */
  bucketBy: string;
  /** In order. Cohort stages and percent stages accumulate: a later stage keeps every earlier cohort and percent. */
  stages: CanaryStage[];
  /** Minimum time each stage is held before the guard may advance it. */
  stageDurationSeconds: number;
  guard: GuardConfig;
}

export const DEFAULT_GUARD: GuardConfig = {
  maxErrorRateIncrease: 0.01,
  maxLatencyIncreasePercent: 20,
  minSamples: 500,
  confidence: 0.95,
};

export const DEFAULT_STAGE_DURATION_SECONDS = 1800;
const MAX_STAGES = 32;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const hasAtMostThreeDecimals = (p: number) => Math.abs(Math.round(p * 1000) - p * 1000) < 1e-6;

/** The percent a stage serves at or before index `stage` (percents only grow), 0 when only cohorts so far. */
export function percentAt(doc: CanaryDocument, stage: number): number {
  let percent = 0;
  for (let i = 0; i <= stage && i < doc.stages.length; i++) {
    const s = doc.stages[i]!;
    if ('percent' in s) percent = Math.max(percent, s.percent);
  }
  return percent;
}

/** The cohorts (segment keys) active at index `stage`. */
export function cohortsAt(doc: CanaryDocument, stage: number): string[] {
  const out: string[] = [];
  for (let i = 0; i <= stage && i < doc.stages.length; i++) {
    const s = doc.stages[i]!;
    if ('segment' in s) out.push(s.segment);
  }
  return out;
}

/**
 * Validates an operator's canary document against the flag it targets. `segmentExists` lets the caller check cohort
 * stages against the segment store.
 */
export function validateCanaryDocument(
  input: unknown,
  flag: Pick<FlagDefinition, 'variants'>,
  segmentExists: (key: string) => boolean,
): { value: CanaryDocument; issues: [] } | { value: null; issues: ValidationIssue[] } {
  const issues: ValidationIssue[] = [];
  const add = (path: string, message: string) => issues.push({ path, message });
  if (!isRecord(input)) {
    add('', 'must be an object');
    return { value: null, issues };
  }
  const known = new Set(['control', 'canary', 'bucketBy', 'stages', 'stageDurationSeconds', 'guard']);
  // An unknown field is most likely a typo (`stageDuration`), and silently ignoring it would run a different canary.
  for (const k of Object.keys(input)) if (!known.has(k)) add(`/${k}`, 'unknown field');
  const variantKeys = new Set(flag.variants.map((v) => v.key));
  for (const field of ['control', 'canary'] as const) {
    const v = input[field];
    if (typeof v !== 'string' || v === '') add(`/${field}`, 'must be a variant key');
    else if (!variantKeys.has(v)) add(`/${field}`, `unknown variant "${v}" (the flag has ${[...variantKeys].join(', ')})`);
  }
  if (typeof input.control === 'string' && input.control === input.canary) add('/canary', 'must differ from control');
  const bucketBy = input.bucketBy ?? 'key';
  if (typeof bucketBy !== 'string' || bucketBy === '') add('/bucketBy', 'must be a non-empty attribute name');

  const stages: CanaryStage[] = [];
  if (!Array.isArray(input.stages) || input.stages.length === 0) add('/stages', 'must be a non-empty array');
  else if (input.stages.length > MAX_STAGES) add('/stages', `at most ${MAX_STAGES} stages`);
  else {
    let lastPercent = 0;
    const seen = new Set<string>();
    // biome-ignore lint/suspicious/useIterableCallbackReturn: `return add(...)` ends one stage's checks (add returns nothing)
    input.stages.forEach((s: unknown, i: number) => {
      const path = `/stages/${i}`;
      if (!isRecord(s)) return add(path, 'must be { "segment": key } or { "percent": n }');
      const keys = Object.keys(s);
      if ('segment' in s && keys.length === 1) {
        if (typeof s.segment !== 'string' || s.segment === '') return add(`${path}/segment`, 'must be a segment key');
        if (seen.has(s.segment)) return add(`${path}/segment`, `segment "${s.segment}" appears twice`);
        if (!segmentExists(s.segment)) return add(`${path}/segment`, `unknown segment "${s.segment}"`);
        seen.add(s.segment);
        stages.push({ segment: s.segment });
      } else if ('percent' in s && keys.length === 1) {
        const p = s.percent;
        if (!isFiniteNumber(p) || p <= 0 || p > 100) return add(`${path}/percent`, 'must be a number above 0 and at most 100');
        if (!hasAtMostThreeDecimals(p)) return add(`${path}/percent`, 'at most three decimals');
        // A canary's bucket range only grows (ramp stability): a later stage may not serve a smaller percent.
        if (p <= lastPercent) return add(`${path}/percent`, `must be greater than the previous percent stage (${lastPercent})`);
        lastPercent = p;
        stages.push({ percent: p });
      } else add(path, 'must be exactly { "segment": key } or { "percent": n }');
    });
  }

  const duration = input.stageDurationSeconds ?? DEFAULT_STAGE_DURATION_SECONDS;
  if (!isFiniteNumber(duration) || duration < 0 || duration > 30 * 86_400) {
    add('/stageDurationSeconds', 'must be a number of seconds from 0 to 2592000');
  }

  const g = input.guard ?? {};
  const guard: GuardConfig = { ...DEFAULT_GUARD };
  if (!isRecord(g)) add('/guard', 'must be an object');
  else {
    for (const k of Object.keys(g)) if (!(k in DEFAULT_GUARD)) add(`/guard/${k}`, 'unknown field');
    const num = (k: keyof GuardConfig, ok: (x: number) => boolean, msg: string) => {
      if (g[k] === undefined) return;
      const x = g[k];
      if (!isFiniteNumber(x) || !ok(x)) add(`/guard/${k}`, msg);
      else guard[k] = x;
    };
    num('maxErrorRateIncrease', (x) => x >= 0 && x < 1, 'must be a number from 0 to below 1 (an absolute increase)');
    num('maxLatencyIncreasePercent', (x) => x >= 0 && x <= 10_000, 'must be a number of percent from 0 to 10000');
    num('minSamples', (x) => Number.isInteger(x) && x >= 1 && x <= 1e9, 'must be a positive integer');
    num('confidence', (x) => x >= 0.5 && x <= 0.9999, 'must be from 0.5 to 0.9999');
  }

  if (issues.length > 0) return { value: null, issues };
  return {
    value: {
      control: input.control as string,
      canary: input.canary as string,
      bucketBy: bucketBy as string,
      stages,
      stageDurationSeconds: duration as number,
      guard,
    },
    issues: [],
  };
}
