/**
 * Seeded simulation of canaries for the benchmark and the figures in docs/canary-analysis.md: SDK flushes arrive
 * in batches, the guard checks after every batch, and we count how often it rolls back a healthy canary and how
 * long it takes to catch a real regression. Reproducible: everything draws from one seeded generator.
 */
import { bucketLowerMs, LATENCY_BUCKETS, mergeHistogram, type SparseHistogram } from '@aviary/sdk/core';
import { errorRateTest, latencyTest, tailTest, testAlpha, type GuardConfig, type OutcomeTotals } from './stats.js';

/** mulberry32: small, fast, good enough for simulation; seeded so runs reproduce. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rng: () => number): number {
  let u = 0;
  while (u === 0) u = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** Binomial(n, p): exact by geometric gaps while n·p is small, normal approximation above. */
export function binomial(n: number, p: number, rng: () => number): number {
  if (n <= 0 || p <= 0) return 0;
  if (p >= 1) return n;
  if (p > 0.5) return n - binomial(n, 1 - p, rng);
  const mean = n * p;
  if (mean < 40) {
    const logq = Math.log1p(-p);
    let x = 0;
    let pos = 0;
    for (;;) {
      let u = rng();
      while (u === 0) u = rng();
      pos += Math.floor(Math.log(u) / logq) + 1;
      if (pos > n) return x;
      x++;
    }
  }
  const x = Math.round(mean + Math.sqrt(mean * (1 - p)) * gaussian(rng));
  return Math.min(n, Math.max(0, x));
}

function normalCdf(z: number): number {
  // Abramowitz–Stegun 7.1.26 via erf; error < 1.5e-7, plenty for bucket probabilities.
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? (1 + y) / 2 : (1 - y) / 2;
}

/** A latency distribution: lognormal with the given median (ms) and log-scale spread. */
export interface LatencyModel {
  medianMs: number;
  sigma: number;
}

/** Probabilities of each histogram bucket under a lognormal latency model. */
export function bucketProbabilities(m: LatencyModel): Array<[number, number]> {
  const mu = Math.log(m.medianMs);
  const out: Array<[number, number]> = [];
  let prev = 0;
  for (let i = 1; i <= LATENCY_BUCKETS; i++) {
    const upper = i < LATENCY_BUCKETS ? normalCdf((Math.log(bucketLowerMs(i)) - mu) / m.sigma) : 1;
    const p = upper - prev;
    if (p > 1e-9) out.push([i - 1, p]);
    prev = upper;
  }
  return out;
}

/** A multinomial draw of `n` latencies into histogram buckets. */
export function sampleHistogram(n: number, probs: Array<[number, number]>, rng: () => number): SparseHistogram {
  const h: SparseHistogram = {};
  let left = n;
  let mass = 1;
  for (const [i, p] of probs) {
    if (left <= 0) break;
    const c = binomial(left, Math.min(1, p / mass), rng);
    if (c > 0) h[String(i)] = c;
    left -= c;
    mass -= p;
    if (mass <= 0) break;
  }
  return h;
}

/** One side's behaviour in a simulation. */
export interface ArmModel {
  errorRate: number;
  latency: LatencyModel;
  /** A share of requests that is `slowFactor` times slower (a slow shard, a timeout path). */
  slowShare?: number;
  slowFactor?: number;
}

/** A simulated canary: traffic, stages, how often the SDKs flush, and what the guard is. */
export interface Scenario {
  /** Outcomes per second over all traffic. */
  outcomesPerSecond: number;
  /** Canary share of traffic per stage, in percent. */
  stagePercents: number[];
  /** Stages the guard splits α over (default: stagePercents.length). */
  alphaStages?: number;
  holdSeconds: number;
  /** The guard checks after every batch (one SDK flush interval). */
  batchSeconds: number;
  guard: GuardConfig;
  control: ArmModel;
  canary: ArmModel;
}

/** What one simulated canary did. */
export interface RunResult {
  rolledBack: boolean;
  /** Which test caused the rollback. */
  by: 'errorRate' | 'latency' | 'tail' | null;
  /** Seconds from the start of the stage where the rollback happened. */
  seconds: number;
  /** Canary outcomes in the stage window at the rollback. */
  canarySamples: number;
  /** A naive fixed-sample one-sided z-test at the same α, peeked after every batch, would have rolled back. */
  naiveRolledBack: boolean;
  /** The same naive z-test at the whole 1 − confidence (no split over stages and metrics), peeked after every batch. */
  naiveUnsplitRolledBack: boolean;
}

const emptyTotals = (): OutcomeTotals => ({ evaluations: 0, outcomes: 0, errors: 0, latency: {} });

interface ArmProbs {
  normal: Array<[number, number]>;
  slow: Array<[number, number]> | null;
}

function armProbs(arm: ArmModel): ArmProbs {
  return {
    normal: bucketProbabilities(arm.latency),
    slow: arm.slowShare ? bucketProbabilities({ medianMs: arm.latency.medianMs * (arm.slowFactor ?? 1), sigma: arm.latency.sigma }) : null,
  };
}

function addBatch(t: OutcomeTotals, n: number, arm: ArmModel, probs: ArmProbs, rng: () => number): void {
  t.outcomes += n;
  t.evaluations += n;
  t.errors += binomial(n, arm.errorRate, rng);
  const slow = probs.slow ? binomial(n, arm.slowShare ?? 0, rng) : 0;
  mergeHistogram(t.latency, sampleHistogram(n - slow, probs.normal, rng));
  if (slow > 0 && probs.slow) mergeHistogram(t.latency, sampleHistogram(slow, probs.slow, rng));
}

// One-sided normal quantile by bisection on the CDF (only used for the naive comparison).
function zQuantile(p: number): number {
  let lo = -10;
  let hi = 10;
  for (let k = 0; k < 80; k++) {
    const mid = (lo + hi) / 2;
    if (normalCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Runs one canary through its stages, checking the guard after every batch; stops at the first rollback. */
export function simulateCanary(s: Scenario, rng: () => number): RunResult {
  const alpha = testAlpha(s.guard, s.alphaStages ?? s.stagePercents.length);
  const z = zQuantile(1 - alpha);
  const zUnsplit = zQuantile(s.guard.confidence);
  const controlProbs = armProbs(s.control);
  const canaryProbs = armProbs(s.canary);
  const perBatch = s.outcomesPerSecond * s.batchSeconds;
  // The tail test's reference: before the first stage, an hold's worth of all-control traffic; later, the previous
  // stage's control outcomes (as the server takes the control's latency before the window).
  let reference: OutcomeTotals = emptyTotals();
  addBatch(reference, s.outcomesPerSecond * s.holdSeconds, s.control, controlProbs, rng);
  let naive = false;
  let naiveUnsplit = false;
  for (const percent of s.stagePercents) {
    const canary = emptyTotals();
    const control = emptyTotals();
    for (let t = s.batchSeconds; t <= s.holdSeconds; t += s.batchSeconds) {
      const nc = binomial(perBatch, percent / 100, rng);
      addBatch(canary, nc, s.canary, canaryProbs, rng);
      addBatch(control, perBatch - nc, s.control, controlProbs, rng);
      const err = errorRateTest(canary, control, s.guard, alpha);
      const lat = latencyTest(canary.latency, control.latency, s.guard, alpha);
      const tail = tailTest(canary.latency, control.latency, reference.latency, s.guard, alpha);
      if (!naive && err.enoughSamples) {
        const pc = canary.errors / canary.outcomes;
        const pk = control.errors / control.outcomes;
        const se = Math.sqrt((pc * (1 - pc)) / canary.outcomes + (pk * (1 - pk)) / control.outcomes);
        const zScore = se > 0 ? (pc - pk - s.guard.maxErrorRateIncrease) / se : 0;
        if (zScore > z) naive = true;
        if (zScore > zUnsplit) naiveUnsplit = true;
      }
      if (err.breach || lat?.breach || tail?.breach) {
        const by = err.breach ? 'errorRate' : lat?.breach ? 'latency' : 'tail';
        return { rolledBack: true, by, seconds: t, canarySamples: canary.outcomes, naiveRolledBack: true, naiveUnsplitRolledBack: true };
      }
    }
    reference = control;
  }
  return {
    rolledBack: false,
    by: null,
    seconds: s.holdSeconds * s.stagePercents.length,
    canarySamples: 0,
    naiveRolledBack: naive,
    naiveUnsplitRolledBack: naiveUnsplit,
  };
}

/** Median and 90th percentile of a list of numbers. */
export function medianP90(xs: number[]): { median: number; p90: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
  return { median: at(0.5), p90: at(0.9) };
}
