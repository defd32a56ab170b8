/**
 * How a canary becomes flag state (CONTRACT §4), so SDKs serve it with nothing canary-specific:
 * - each cohort stage reached is a rule `canary-cohort-<segment>` serving the canary, appended after the operator's
 *   own rules (their deliberate targeting keeps precedence; the canary rolls out the default path);
 * - the percent reached is the fallthrough: a two-variant rollout, canary first, then control. Canary first means its
 *   bucket range [0, percent × 1000) only grows from stage to stage: nobody who got the canary loses it;
 * - rolled back: canary rules removed, fallthrough → control; promoted / completed: canary rules removed,
 *   fallthrough → canary.
 * Targets, `enabled`, `offVariant` and every other rule are the operator's and left as they are.
 */
import type { FlagState, Rule, Serve } from '@aviary/sdk/core';
import { cohortsAt, percentAt } from './document.js';
import type { CanaryRun } from './state-machine.js';

export const CANARY_RULE_PREFIX = 'canary-cohort-';

const isCanaryRule = (r: Rule) => r.id.startsWith(CANARY_RULE_PREFIX);

/** The fallthrough and canary rules a run prescribes, in the order they belong. */
function prescribed(run: CanaryRun, flagKey: string): { rules: Rule[]; fallthrough: Serve } {
  const doc = run.document;
  if (run.state === 'rolled_back') return { rules: [], fallthrough: { variant: doc.control } };
  if (run.state === 'promoted' || run.state === 'completed') return { rules: [], fallthrough: { variant: doc.canary } };
  const rules: Rule[] = cohortsAt(doc, run.stage).map((segment) => ({
    id: `${CANARY_RULE_PREFIX}${segment}`,
    description: `canary cohort: serves "${doc.canary}" to segment "${segment}"`,
    conditions: [{ segment }],
    serve: { variant: doc.canary },
  }));
  const percent = percentAt(doc, run.stage);
  const fallthrough: Serve =
    percent <= 0
      ? { variant: doc.control }
      : {
          rollout: {
            bucketBy: doc.bucketBy,
            salt: flagKey,
            weights: [
              { variant: doc.canary, percent },
              { variant: doc.control, percent: Math.round((100 - percent) * 1000) / 1000 },
            ],
          },
        };
  return { rules, fallthrough };
}

/** The flag state `current` becomes under `run` (the version is left for the store to bump). */
export function renderFlagState(current: FlagState, run: CanaryRun, flagKey: string): FlagState {
  const { rules, fallthrough } = prescribed(run, flagKey);
  return {
    ...current,
    rules: [...current.rules.filter((r) => !isCanaryRule(r)), ...rules],
    fallthrough,
  };
}

/**
 * Whether someone changed what the canary controls (its rules or the fallthrough) since it last rendered the flag.
 * A running canary that finds this pauses instead of overwriting the operator's edit.
 */
export function isDrifted(current: FlagState, run: CanaryRun, flagKey: string): boolean {
  const want = prescribed(run, flagKey);
  const have = current.rules.filter(isCanaryRule);
  const rules = (rs: Rule[]) =>
    JSON.stringify(rs.map((r) => [r.id, r.conditions.map((c) => ('segment' in c ? c.segment : '?')), normalizeServe(r.serve, flagKey)]));
  return (
    rules(have) !== rules(want.rules) ||
    JSON.stringify(normalizeServe(current.fallthrough, flagKey)) !== JSON.stringify(normalizeServe(want.fallthrough, flagKey))
  );
}

// Stores may spell defaults out or leave them implicit; compare meaning, not spelling.
function normalizeServe(s: Serve, flagKey: string): unknown {
  if ('variant' in s) return { variant: s.variant };
  const r = s.rollout;
  return { bucketBy: r.bucketBy ?? 'key', salt: r.salt ?? flagKey, weights: r.weights.map((w) => [w.variant, w.percent]) };
}

/** A part of the operator's own flag state that serves the canary variant outside the canary's rollout. */
export interface ExposureIssue {
  /** JSON pointer into the flag state. */
  path: string;
  message: string;
}

/**
 * Where the flag state serves `canary` to contexts the canary's own rollout did not choose: the operator's targets
 * and rules (not the canary's cohort rules), and `offVariant` (served to contexts without the `bucketBy` attribute,
 * and by the kill switch). Such traffic is not a random sample, so the guard's comparison would be biased by it, and a
 * rollback would not take it away (docs/canary-analysis.md, "The operator's own rules").
 */
export function operatorExposure(state: Pick<FlagState, 'targets' | 'rules' | 'offVariant'>, canary: string): ExposureIssue[] {
  const out: ExposureIssue[] = [];
  state.targets.forEach((t, i) => {
    if (t.variant === canary && t.keys.length > 0)
      out.push({ path: `/targets/${i}`, message: `targets ${t.keys.length} context key(s) to "${canary}"` });
  });
  state.rules.forEach((r, i) => {
    if (isCanaryRule(r)) return;
    const s = r.serve;
    const serves = 'variant' in s ? s.variant === canary : s.rollout.weights.some((w) => w.variant === canary && w.percent > 0);
    if (serves) out.push({ path: `/rules/${i}`, message: `rule "${r.id}" serves "${canary}"${'variant' in s ? '' : ' in a rollout'}` });
  });
  if (state.offVariant === canary)
    out.push({
      path: '/offVariant',
      message: `offVariant is "${canary}": the kill switch and contexts without the bucketBy attribute would get the canary`,
    });
  return out;
}
