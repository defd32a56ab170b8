/**
 * The canary document (CONTRACT §4, fixed field names) and its validation. The route's OpenAPI schema (`Canary`)
 * has already checked every field's type, range and name; validation here checks what a schema cannot know (the
 * flag's variants, the segments that exist, percents that only grow) and returns every problem with a JSON-pointer
 * path, so the route answers one problem+json listing them all.
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

/** A canary document as the `Canary` schema accepts it (optional members not yet defaulted). */
export interface CanaryInput {
  control: string;
  canary: string;
  bucketBy?: string;
  stages: CanaryStage[];
  stageDurationSeconds?: number;
  guard?: Partial<GuardConfig>;
}

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
 * Checks a schema-valid canary document against the flag it targets and fills its defaults. `segmentExists` lets the
 * caller check cohort stages against the segment store.
 */
export function validateCanaryDocument(
  input: CanaryInput,
  flag: Pick<FlagDefinition, 'variants'>,
  segmentExists: (key: string) => boolean,
): { value: CanaryDocument; issues: [] } | { value: null; issues: ValidationIssue[] } {
  const issues: ValidationIssue[] = [];
  const add = (path: string, message: string) => issues.push({ path, message });
  const variantKeys = new Set(flag.variants.map((v) => v.key));
  for (const field of ['control', 'canary'] as const) {
    const v = input[field];
    if (!variantKeys.has(v)) add(`/${field}`, `unknown variant "${v}" (the flag has ${[...variantKeys].join(', ')})`);
  }
  if (input.control === input.canary) add('/canary', 'must differ from control');

  let lastPercent = 0;
  const seen = new Set<string>();
  input.stages.forEach((s, i) => {
    const path = `/stages/${i}`;
    if ('segment' in s) {
      if (seen.has(s.segment)) add(`${path}/segment`, `segment "${s.segment}" appears twice`);
      else if (!segmentExists(s.segment)) add(`${path}/segment`, `unknown segment "${s.segment}"`);
      seen.add(s.segment);
    } else if (!hasAtMostThreeDecimals(s.percent)) add(`${path}/percent`, 'at most three decimals');
    // A canary's bucket range only grows (ramp stability): a later stage may not serve a smaller percent.
    else if (s.percent <= lastPercent) add(`${path}/percent`, `must be greater than the previous percent stage (${lastPercent})`);
    else lastPercent = s.percent;
  });

  if (issues.length > 0) return { value: null, issues };
  return {
    value: {
      control: input.control,
      canary: input.canary,
      bucketBy: input.bucketBy ?? 'key',
      stages: input.stages.map((s) => ('segment' in s ? { segment: s.segment } : { percent: s.percent })),
      stageDurationSeconds: input.stageDurationSeconds ?? DEFAULT_STAGE_DURATION_SECONDS,
      guard: { ...DEFAULT_GUARD, ...input.guard },
    },
    issues: [],
  };
}
