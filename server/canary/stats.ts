/**
 * Guard statistics: canary versus control, checked every time new outcomes arrive.
 *
 * Method: the mixture sequential probability ratio test (mSPRT) of Johari, Pekelis & Walsh, "Always valid inference"
 * (2017; the test behind Optimizely's Stats Engine), with a normal mixing distribution N(0, τ²) and the normal
 * approximation of the difference of two means. Inverting it gives an always-valid confidence sequence: with
 * probability at least 1 − α the true difference lies inside *every* interval ever reported, however often the
 * guard looks. A fixed-sample z-test would not survive being checked after every SDK flush (its false-alarm rate
 * grows without bound with the number of looks; see docs/canary-analysis.md for the simulated numbers).
 *
 * Two tests, one per limit:
 * - error rate: d = p_canary − p_control, regression when the interval's lower bound exceeds `maxErrorRateIncrease`;
 * - latency: d = mean ln(latency)_canary − mean ln(latency)_control from the merged log-scale histograms (the ratio
 *   of geometric means); a slowdown that scales latencies by a factor moves every percentile, p95 included, by that
 *   factor, and log-latency is close to normal so the approximation holds at small samples. Regression when the
 *   lower bound exceeds ln(1 + maxLatencyIncreasePercent / 100).
 * - latency tail: a slowdown of a few percent of requests (timeouts, a slow shard) barely moves the mean but moves
 *   p95. With T the control's p95 measured *before* the window (so fixed in advance), d = share of canary outcomes
 *   slower than (1 + limit)·T − share of control outcomes slower than T; if the canary is no slower than (1 + limit)×
 *   the control throughout its distribution, d ≤ 0, so a regression is a lower bound above 0.
 * Each interval is a valid test of "the canary is within the limit", so a regression verdict is a statistically
 * significant breach of the configured limit, not merely a significant difference.
 *
 * This module is pure: no I/O, no clock.
 */
import { bucketLowerMs, bucketMidMs, histogramQuantile, LATENCY_BUCKETS, type SparseHistogram } from '@aviary/sdk/core';
import type { EvidenceSources } from './evidence.js';

/** The guard of a canary document (CONTRACT §4, fixed field names). */
export interface GuardConfig {
  /** Absolute increase of the error rate tolerated (0.01 = one percentage point). */
  maxErrorRateIncrease: number;
  /** Relative latency increase tolerated, in percent. */
  maxLatencyIncreasePercent: number;
  /** Outcomes needed on each side before the guard may decide anything. */
  minSamples: number;
  /** 1 − the probability of a false rollback over the whole canary (0.5 ≤ confidence < 1). */
  confidence: number;
}

/** What SDKs reported for one variant over the comparison window. */
export interface OutcomeTotals {
  evaluations: number;
  /** Outcomes recorded with `track()`. */
  outcomes: number;
  errors: number;
  /** Merged latency histogram of the outcomes that carried `latencyMs`. */
  latency: SparseHistogram;
}

/** Latency percentiles in milliseconds, read from a merged histogram (null without latency samples). */
export interface LatencyPercentiles {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** One side of the comparison, as shown by `GET .../canary`. */
export interface SideSummary {
  variant: string;
  evaluations: number;
  outcomes: number;
  /** Same as `outcomes`: what the error-rate test counts. */
  samples: number;
  errors: number;
  /** errors / outcomes, or null without outcomes. */
  errorRate: number | null;
  latencySamples: number;
  latencyMs: LatencyPercentiles;
}

/** One sequential test: an estimate with its always-valid confidence interval, against a limit. */
export interface SequentialTest {
  /** error rate: canary − control (absolute). latency: percent change of the geometric mean latency. */
  difference: number;
  /** Always-valid confidence interval of `difference`, same unit. */
  interval: [number, number];
  /** The configured limit, same unit. */
  limit: number;
  /** Error probability this test spends (its share of 1 − confidence). */
  alpha: number;
  /** Both sides had at least `minSamples`. */
  enoughSamples: boolean;
  /** The interval lies entirely above the limit. */
  breach: boolean;
}

/** Verdict of the guard. */
export type GuardDecision = 'healthy' | 'regression' | 'insufficient';

/** The live comparison of canary and control. */
export interface Comparison {
  decision: GuardDecision;
  /** A sentence an operator can read in the audit log. */
  why: string;
  canary: SideSummary;
  control: SideSummary;
  errorRate: SequentialTest;
  /** Null while either side has no latency samples at all. */
  latency: (SequentialTest & { p95IncreasePercent: number | null }) | null;
  /** Null without a reference p95 (control latency before the window) or latency samples. */
  tail: TailTest | null;
  method: string;
  /** Where the evidence came from (server- and client-side keys), set by the guard (server/canary/evidence.ts). */
  sources?: EvidenceSources;
}

/** The tail test: shares of slow outcomes on each side, in proportion units (0.03 = 3 points). */
export interface TailTest extends SequentialTest {
  /** The control's p95 before the window (ms, a bucket edge): control outcomes at or above it count as slow. */
  thresholdMs: number;
  /** (1 + limit) × thresholdMs rounded up to a bucket edge: canary outcomes at or above it count as slow. */
  canaryThresholdMs: number;
  canarySlowShare: number;
  controlSlowShare: number;
}

export const METHOD = 'mSPRT (Johari et al. 2017) with a normal mixture: always-valid confidence intervals, Bonferroni-split across stages and tests';

/** Sequential tests per stage: error rate, mean log-latency, latency tail. */
export const TESTS_PER_STAGE = 3;

/**
 * Half-width of the always-valid interval for a difference of means whose estimate has variance `variance`.
 * Rejecting θ when the mixture likelihood ratio √(V/(V+τ²))·exp(τ²(d−θ)²/(2V(V+τ²))) reaches 1/α gives
 * |d − θ| < √(2V(V+τ²)/τ² · (ln(1/α) + ½·ln((V+τ²)/V))).
 */
export function mixtureHalfWidth(variance: number, tau2: number, alpha: number): number {
  if (!(variance > 0)) return 0;
  const v = variance;
  return Math.sqrt(((2 * v * (v + tau2)) / tau2) * (Math.log(1 / alpha) + 0.5 * Math.log((v + tau2) / v)));
}

/**
 * The error probability of one test: 1 − confidence is split evenly over the canary's stages (each stage starts a
 * fresh window) and its three tests, so the chance of any false rollback over the whole canary stays ≤ 1 − confidence.
 */
export function testAlpha(guard: GuardConfig, stageCount: number): number {
  return (1 - guard.confidence) / (TESTS_PER_STAGE * Math.max(1, stageCount));
}

/**
 * Mixing scale of the error-rate test. The mSPRT detects fastest effects near τ; what matters is an excess of the
 * order of the limit itself, so τ follows the limit with a floor for limits of zero. Fixed in advance (never fitted
 * to the data), as validity requires.
 */
export function errorTau(guard: GuardConfig): number {
  return Math.max(guard.maxErrorRateIncrease, 0.005);
}

/** Mixing scale of the latency test, in natural-log units (0.1 ≈ a 10% shift). */
export function latencyTau(guard: GuardConfig): number {
  return Math.max(Math.log1p(guard.maxLatencyIncreasePercent / 100), 0.05);
}

/** Count, mean and variance of ln(latency ms) over a histogram, at bucket midpoints. */
export function logLatencyMoments(h: SparseHistogram): { n: number; mean: number; variance: number } {
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  // Bucket 0 holds everything under ~1 µs including 0; place it at half the first edge so ln stays finite.
  const floor = Math.log(bucketMidMs(1) / 2);
  for (const k in h) {
    const c = h[k] ?? 0;
    if (!(c > 0)) continue;
    const i = Number(k);
    const x = i <= 0 ? floor : Math.log(bucketMidMs(i));
    n += c;
    sum += c * x;
    sumSq += c * x * x;
  }
  if (n === 0) return { n: 0, mean: 0, variance: 0 };
  const mean = sum / n;
  const variance = n > 1 ? Math.max(0, (sumSq - n * mean * mean) / (n - 1)) : 0;
  return { n, mean, variance };
}

function histogramCount(h: SparseHistogram): number {
  let n = 0;
  for (const k in h) n += h[k] ?? 0;
  return n;
}

function summarize(variant: string, t: OutcomeTotals): SideSummary {
  const q = (p: number) => histogramQuantile(t.latency, p);
  return {
    variant,
    evaluations: t.evaluations,
    outcomes: t.outcomes,
    samples: t.outcomes,
    errors: t.errors,
    errorRate: t.outcomes > 0 ? t.errors / t.outcomes : null,
    latencySamples: histogramCount(t.latency),
    latencyMs: { p50: q(0.5), p95: q(0.95), p99: q(0.99) },
  };
}

/**
 * Always-valid test of the error-rate difference. The variance uses a shrunk proportion ((x + ½)/(n + 1)) so that a
 * side with no errors yet does not claim zero variance.
 */
export function errorRateTest(canary: OutcomeTotals, control: OutcomeTotals, guard: GuardConfig, alpha: number): SequentialTest {
  const enoughSamples = canary.outcomes >= guard.minSamples && control.outcomes >= guard.minSamples && canary.outcomes > 0 && control.outcomes > 0;
  const pc = canary.outcomes > 0 ? canary.errors / canary.outcomes : 0;
  const pk = control.outcomes > 0 ? control.errors / control.outcomes : 0;
  const difference = pc - pk;
  if (canary.outcomes === 0 || control.outcomes === 0) {
    return { difference, interval: [-1, 1], limit: guard.maxErrorRateIncrease, alpha, enoughSamples, breach: false };
  }
  const sc = (canary.errors + 0.5) / (canary.outcomes + 1);
  const sk = (control.errors + 0.5) / (control.outcomes + 1);
  const variance = (sc * (1 - sc)) / canary.outcomes + (sk * (1 - sk)) / control.outcomes;
  const tau = errorTau(guard);
  const h = mixtureHalfWidth(variance, tau * tau, alpha);
  const interval: [number, number] = [Math.max(-1, difference - h), Math.min(1, difference + h)];
  return {
    difference,
    interval,
    limit: guard.maxErrorRateIncrease,
    alpha,
    enoughSamples,
    breach: enoughSamples && interval[0] > guard.maxErrorRateIncrease,
  };
}

const toPercent = (logRatio: number) => Math.expm1(logRatio) * 100;

/** Always-valid test of the latency ratio (geometric means), reported in percent. */
export function latencyTest(
  canary: SparseHistogram,
  control: SparseHistogram,
  guard: GuardConfig,
  alpha: number,
): (SequentialTest & { p95IncreasePercent: number | null }) | null {
  const c = logLatencyMoments(canary);
  const k = logLatencyMoments(control);
  if (c.n === 0 || k.n === 0) return null;
  const enoughSamples = c.n >= guard.minSamples && k.n >= guard.minSamples;
  const d = c.mean - k.mean;
  // A side with one sample (or all in one bucket) has no spread yet; borrow the other side's so the
  // interval is not falsely narrow, and a tiny floor (a tenth of a bucket) so it is never zero.
  const vc = c.n > 1 && c.variance > 0 ? c.variance : k.variance;
  const vk = k.n > 1 && k.variance > 0 ? k.variance : c.variance;
  const variance = Math.max(vc, 1e-4) / c.n + Math.max(vk, 1e-4) / k.n;
  const tau = latencyTau(guard);
  const h = mixtureHalfWidth(variance, tau * tau, alpha);
  const limitLog = Math.log1p(guard.maxLatencyIncreasePercent / 100);
  const p95c = histogramQuantile(canary, 0.95);
  const p95k = histogramQuantile(control, 0.95);
  return {
    difference: toPercent(d),
    interval: [toPercent(d - h), toPercent(d + h)],
    limit: guard.maxLatencyIncreasePercent,
    alpha,
    enoughSamples,
    breach: enoughSamples && d - h > limitLog,
    p95IncreasePercent: p95c !== null && p95k !== null && p95k > 0 ? (p95c / p95k - 1) * 100 : null,
  };
}

/** Mixing scale of the tail test (shares of slow outcomes; a p95 breach moves the share by a few points). */
const TAIL_TAU = 0.02;

function countFrom(h: SparseHistogram, fromBucket: number): number {
  let n = 0;
  for (const k in h) if (Number(k) >= fromBucket) n += h[k] ?? 0;
  return n;
}

/** Bucket index holding the q-quantile of a histogram, or null when it is empty. */
function quantileBucket(h: SparseHistogram, q: number): number | null {
  const entries = Object.keys(h)
    .map((k) => [Number(k), h[k] ?? 0] as const)
    .filter(([, c]) => c > 0)
    .sort((a, b) => a[0] - b[0]);
  const total = entries.reduce((a, [, c]) => a + c, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [i, c] of entries) {
    seen += c;
    if (seen >= rank) return i;
  }
  return entries[entries.length - 1]![0];
}

/**
 * Always-valid test of the latency tail against `reference`, the control's latency before the window. Null without a
 * reference of at least `minSamples` or without latency on both sides.
 */
export function tailTest(
  canary: SparseHistogram,
  control: SparseHistogram,
  reference: SparseHistogram | null,
  guard: GuardConfig,
  alpha: number,
): TailTest | null {
  if (!reference || histogramCount(reference) < guard.minSamples) return null;
  const nc = histogramCount(canary);
  const nk = histogramCount(control);
  if (nc === 0 || nk === 0) return null;
  const p95Bucket = quantileBucket(reference, 0.95)!;
  // Slow = at or above the upper edge of the reference p95's bucket; for the canary, (1 + limit) times that, rounded
  // up to a bucket edge so that the null hypothesis stays on the safe side of the discretisation.
  const controlFrom = Math.min(LATENCY_BUCKETS - 1, p95Bucket + 1);
  const target = bucketLowerMs(controlFrom) * (1 + guard.maxLatencyIncreasePercent / 100);
  let canaryFrom = controlFrom;
  while (canaryFrom < LATENCY_BUCKETS - 1 && bucketLowerMs(canaryFrom) < target * (1 - 1e-12)) canaryFrom++;
  const xc = countFrom(canary, canaryFrom);
  const xk = countFrom(control, controlFrom);
  const qc = xc / nc;
  const qk = xk / nk;
  const sc = (xc + 0.5) / (nc + 1);
  const sk = (xk + 0.5) / (nk + 1);
  const h = mixtureHalfWidth((sc * (1 - sc)) / nc + (sk * (1 - sk)) / nk, TAIL_TAU * TAIL_TAU, alpha);
  const enoughSamples = nc >= guard.minSamples && nk >= guard.minSamples;
  const difference = qc - qk;
  return {
    difference,
    interval: [Math.max(-1, difference - h), Math.min(1, difference + h)],
    limit: 0,
    alpha,
    enoughSamples,
    breach: enoughSamples && difference - h > 0,
    thresholdMs: bucketLowerMs(controlFrom),
    canaryThresholdMs: bucketLowerMs(canaryFrom),
    canarySlowShare: qc,
    controlSlowShare: qk,
  };
}

const pct = (x: number, digits = 2) => `${(x * 100).toFixed(digits)}%`;

/**
 * Compares canary with control over one window. `alpha` is the error probability of each test (see `testAlpha`).
 */
export function compare(
  canary: { variant: string; totals: OutcomeTotals },
  control: { variant: string; totals: OutcomeTotals },
  guard: GuardConfig,
  alpha: number,
  /** The control's latency before the window, for the tail test (null: no tail test). */
  reference: SparseHistogram | null = null,
): Comparison {
  const err = errorRateTest(canary.totals, control.totals, guard, alpha);
  const lat = latencyTest(canary.totals.latency, control.totals.latency, guard, alpha);
  const tail = tailTest(canary.totals.latency, control.totals.latency, reference, guard, alpha);
  const base = {
    canary: summarize(canary.variant, canary.totals),
    control: summarize(control.variant, control.totals),
    errorRate: err,
    latency: lat,
    tail,
    method: METHOD,
  };
  if (err.breach) {
    return {
      decision: 'regression',
      why:
        `error rate ${pct(base.canary.errorRate ?? 0)} on ${canary.totals.outcomes} outcomes vs ${pct(base.control.errorRate ?? 0)} ` +
        `on ${control.totals.outcomes}: increase ${pct(err.difference)} with always-valid interval (α ${alpha.toPrecision(2)}) ` +
        `[${pct(err.interval[0])}, ${pct(err.interval[1])}] entirely above the limit ${pct(err.limit)}`,
      ...base,
    };
  }
  if (lat?.breach) {
    return {
      decision: 'regression',
      why:
        `latency +${lat.difference.toFixed(1)}% (geometric mean; p95 ${base.canary.latencyMs.p95?.toFixed(1)} ms vs ` +
        `${base.control.latencyMs.p95?.toFixed(1)} ms) on ${base.canary.latencySamples} vs ${base.control.latencySamples} samples: ` +
        `always-valid interval [${lat.interval[0].toFixed(1)}%, ${lat.interval[1].toFixed(1)}%] entirely above the limit ${lat.limit}%`,
      ...base,
    };
  }
  if (tail?.breach) {
    return {
      decision: 'regression',
      why:
        `latency tail: ${pct(tail.canarySlowShare)} of ${base.canary.latencySamples} canary outcomes took ≥ ${tail.canaryThresholdMs.toFixed(1)} ms ` +
        `(${(100 + guard.maxLatencyIncreasePercent).toFixed(0)}% of the control's earlier p95) vs ${pct(tail.controlSlowShare)} of ` +
        `${base.control.latencySamples} control outcomes ≥ ${tail.thresholdMs.toFixed(1)} ms: always-valid interval ` +
        `[${pct(tail.interval[0])}, ${pct(tail.interval[1])}] of the difference entirely above 0`,
      ...base,
    };
  }
  if (!err.enoughSamples) {
    return {
      decision: 'insufficient',
      why: `waiting for ${guard.minSamples} outcomes on each side (canary ${canary.totals.outcomes}, control ${control.totals.outcomes})`,
      ...base,
    };
  }
  const latText = lat
    ? lat.enoughSamples
      ? `, latency ${lat.difference >= 0 ? '+' : ''}${lat.difference.toFixed(1)}% [${lat.interval[0].toFixed(1)}%, ${lat.interval[1].toFixed(1)}%] within ${lat.limit}%`
      : `, latency not yet tested (${base.canary.latencySamples}/${base.control.latencySamples} samples)`
    : ', no latency reported';
  const tailText = tail?.enoughSamples
    ? `, slow-tail share difference ${pct(tail.difference)} [${pct(tail.interval[0])}, ${pct(tail.interval[1])}] not above 0`
    : '';
  return {
    decision: 'healthy',
    why:
      `no significant regression: error rate difference ${pct(err.difference)} [${pct(err.interval[0])}, ${pct(err.interval[1])}] ` +
      `not entirely above ${pct(err.limit)}${latText}${tailText}`,
    ...base,
  };
}
