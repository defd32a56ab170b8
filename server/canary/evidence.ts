/**
 * Where the guard's evidence comes from, and a verdict that no single client-side contributor can decide.
 *
 * SDK keys are server-side (secret) or client-side (public, shipped in browsers: anyone can hold one and report
 * anything with it). Evidence is kept in two pools (server/canary/evidence-store.ts): the server pool counts what
 * server-side keys report, whole; the client pool counts what client-side keys report, each SDK instance capped over
 * the window and each key capped per minute of arrival, and remembers the largest contribution of one *unit* — one
 * instance over the window, or one key's reports arriving within one minute (a burst).
 *
 * The verdict (CONTRACT §16: no single client-side instance, and no single client-side key's burst, can roll a
 * canary back or push it forward), with d_u the largest unit's contribution on each side:
 * - regression only if the comparison still breaches a limit after removing, from the client pool, the most
 *   incriminating unit imaginable on each side (d_u errors with nothing else from the canary, d_u clean outcomes from
 *   the control; the slowest canary and the fastest control latencies), or if the server pool alone breaches;
 * - healthy only if it stays healthy after removing the most exonerating unit (d_u clean outcomes from the canary,
 *   d_u errors from the control; the fastest canary and slowest control latencies);
 * - otherwise insufficient: the guard waits for independent evidence.
 * With two tests able to roll back (trimmed pools, server pool alone), each gets half of the test's α, so the
 * chance of a false rollback stays within the budget. Without client-side evidence this is exactly `compare`.
 *
 * Pure: no I/O.
 */
import { mergeHistogram, type SparseHistogram } from '@aviary/sdk/core';
import { compare, type Comparison, type GuardConfig, type OutcomeTotals } from './stats.js';

/** The largest contribution one unit (an instance over the window, or a key within a minute) made to one side. */
export interface UnitMax {
  outcomes: number;
  errors: number;
  latencySamples: number;
}

/** One side (canary or control) of one pool. */
export interface SideEvidence extends OutcomeTotals {
  /** Distinct SDK instances (sdkIds) that contributed outcomes. */
  instances: number;
  /** SDK keys (token ids) that contributed. */
  keys: string[];
  maxUnit: UnitMax;
  /** Outcomes left out by the caps (client pool). */
  capped: number;
}

/** Both sides of one pool. */
export interface PoolEvidence {
  canary: SideEvidence;
  control: SideEvidence;
}

/** The guard's evidence over a window. */
export interface Evidence {
  server: PoolEvidence;
  client: PoolEvidence;
}

/** Where the evidence of a comparison came from (shown by `GET .../canary` and recorded in the audit entry). */
export interface EvidenceSources {
  server: PoolSummary;
  client: PoolSummary & { largestUnit: { canary: UnitMax; control: UnitMax }; capped: number };
  /** How the decision was made: on all evidence, or robust to the largest client-side unit. */
  rule: string;
}

interface PoolSummary {
  instances: { canary: number; control: number };
  outcomes: { canary: number; control: number };
  keys: string[];
}

export const emptySide = (): SideEvidence => ({
  evaluations: 0,
  outcomes: 0,
  errors: 0,
  latency: {},
  instances: 0,
  keys: [],
  maxUnit: { outcomes: 0, errors: 0, latencySamples: 0 },
  capped: 0,
});

export const emptyEvidence = (): Evidence => ({
  server: { canary: emptySide(), control: emptySide() },
  client: { canary: emptySide(), control: emptySide() },
});

function count(h: SparseHistogram): number {
  let n = 0;
  for (const k in h) n += h[k] ?? 0;
  return n;
}

/** `h` without its `k` highest (`top`) or lowest samples. */
export function trimHistogram(h: SparseHistogram, k: number, top: boolean): SparseHistogram {
  const out: SparseHistogram = { ...h };
  if (k <= 0) return out;
  const keys = Object.keys(out).sort((a, b) => (top ? Number(b) - Number(a) : Number(a) - Number(b)));
  let left = k;
  for (const key of keys) {
    if (left <= 0) break;
    const c = out[key] ?? 0;
    const take = Math.min(c, left);
    left -= take;
    if (c - take > 0) out[key] = c - take;
    else delete out[key];
  }
  return out;
}

function plus(a: OutcomeTotals, b: OutcomeTotals): OutcomeTotals {
  return {
    evaluations: a.evaluations + b.evaluations,
    outcomes: a.outcomes + b.outcomes,
    errors: a.errors + b.errors,
    latency: mergeHistogram(mergeHistogram({}, a.latency), b.latency),
  };
}

/**
 * Removes from `all` the worst a single client-side unit could have contributed to `client` in one direction:
 * `errors` (a unit of nothing but errors) or `clean` (a unit of nothing but successes), and its latency samples from
 * the `top` or bottom of the histogram. Never removes more than the client pool holds.
 */
function withoutUnit(all: OutcomeTotals, client: SideEvidence, kind: 'errors' | 'clean', top: boolean): OutcomeTotals {
  const removed =
    kind === 'errors' ? Math.min(client.maxUnit.errors, client.errors) : Math.min(client.maxUnit.outcomes, client.outcomes - client.errors);
  const samples = Math.min(client.maxUnit.latencySamples, count(client.latency));
  return {
    evaluations: all.evaluations,
    outcomes: all.outcomes - removed,
    errors: kind === 'errors' ? all.errors - removed : all.errors,
    latency: trimHistogram(all.latency, samples, top),
  };
}

function summary(p: PoolEvidence): PoolSummary {
  return {
    instances: { canary: p.canary.instances, control: p.control.instances },
    outcomes: { canary: p.canary.outcomes, control: p.control.outcomes },
    keys: [...new Set([...p.canary.keys, ...p.control.keys])].sort(),
  };
}

/** The comparison the guard acts on, with where its evidence came from (see the file comment). */
export function decide(
  evidence: Evidence,
  variants: { canary: string; control: string },
  guard: GuardConfig,
  alpha: number,
  reference: SparseHistogram | null,
): Comparison {
  const { server, client } = evidence;
  const canary = plus(server.canary, client.canary);
  const control = plus(server.control, client.control);
  const full = compare({ variant: variants.canary, totals: canary }, { variant: variants.control, totals: control }, guard, alpha, reference);
  const sources: EvidenceSources = {
    server: summary(server),
    client: {
      ...summary(client),
      largestUnit: { canary: client.canary.maxUnit, control: client.control.maxUnit },
      capped: client.canary.capped + client.control.capped,
    },
    rule: 'all evidence (no client-side evidence in the window)',
  };
  if (client.canary.outcomes === 0 && client.control.outcomes === 0) return { ...full, sources };

  const side = (v: string, totals: OutcomeTotals) => ({ variant: v, totals });
  // The most incriminating single unit removed: what is left must still breach for a rollback.
  const trimmedForRollback = compare(
    side(variants.canary, withoutUnit(canary, client.canary, 'errors', true)),
    side(variants.control, withoutUnit(control, client.control, 'clean', false)),
    guard,
    alpha / 2,
    reference,
  );
  const serverOnly = compare(side(variants.canary, server.canary), side(variants.control, server.control), guard, alpha / 2, reference);
  // The most exonerating single unit removed: what is left must still be healthy to advance.
  const trimmedForAdvance = compare(
    side(variants.canary, withoutUnit(canary, client.canary, 'clean', false)),
    side(variants.control, withoutUnit(control, client.control, 'errors', true)),
    guard,
    alpha,
    reference,
  );
  const unit = `${client.canary.maxUnit.outcomes}/${client.control.maxUnit.outcomes} outcomes`;
  if (serverOnly.decision === 'regression') {
    return {
      ...full,
      decision: 'regression',
      why: `server-side evidence alone: ${serverOnly.why}`,
      sources: { ...sources, rule: 'server-side evidence alone (α/2)' },
    };
  }
  if (trimmedForRollback.decision === 'regression') {
    return {
      ...full,
      decision: 'regression',
      why: `${trimmedForRollback.why} (still a breach without the largest client-side contribution, ${unit})`,
      sources: { ...sources, rule: 'robust to the largest client-side instance or key-minute (α/2)' },
    };
  }
  if (full.decision === 'regression') {
    return {
      ...full,
      decision: 'insufficient',
      why: `not decided: the regression rests on a single client-side instance or one key's burst (${unit}); waiting for independent evidence. ${full.why}`,
      sources: { ...sources, rule: 'a regression must survive removing the largest client-side contribution' },
    };
  }
  if (full.decision === 'healthy' && trimmedForAdvance.decision !== 'healthy') {
    return {
      ...full,
      decision: 'insufficient',
      why: `not yet healthy without the largest client-side contribution (${unit}): ${trimmedForAdvance.why}`,
      sources: { ...sources, rule: 'healthy must survive removing the largest client-side contribution' },
    };
  }
  return { ...full, sources: { ...sources, rule: 'robust to the largest client-side instance or key-minute' } };
}
