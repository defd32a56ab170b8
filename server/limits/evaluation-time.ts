import { problem } from '../errors.js';

/**
 * A per-SDK-key allowance of server-side evaluation time. The per-request budget (context-budget.ts, and the
 * validator's pattern-size limit) bounds one request to tens of milliseconds at worst; this bounds what one key can
 * take from the event loop per second, so a flood of worst-case requests from one (public) key leaves the loop to
 * everyone else, kill switches included. A token bucket of milliseconds: a request is admitted while the key has any
 * left, then charged what it actually took; an exhausted key is answered 429 with `Retry-After` until it refills.
 */

/** Allowance per key (docs/operations.md, "SDK-key limits"). */
export interface EvaluationTimeLimits {
  /** Milliseconds of evaluation per key per second (`AVIARY_EVAL_MS_PER_SECOND`). Default 500: half of one core. */
  msPerSecond: number;
  /** Most milliseconds a key may spend at once after being idle. Default 100. */
  burstMs: number;
}

export const DEFAULT_EVALUATION_TIME: EvaluationTimeLimits = { msPerSecond: 500, burstMs: 100 };

export class EvaluationTimeBudget {
  private readonly buckets = new Map<string, { ms: number; at: number }>();

  constructor(
    readonly limits: EvaluationTimeLimits = DEFAULT_EVALUATION_TIME,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  private bucket(tokenId: string) {
    const now = this.clock();
    let b = this.buckets.get(tokenId);
    if (!b) this.buckets.set(tokenId, (b = { ms: this.limits.burstMs, at: now }));
    b.ms = Math.min(this.limits.burstMs, b.ms + ((now - b.at) / 1000) * this.limits.msPerSecond);
    b.at = now;
    return b;
  }

  /** Null when the key may evaluate now; else how long until it may (whole seconds, for `Retry-After`). */
  admit(tokenId: string): { retryAfterSeconds: number } | null {
    const b = this.bucket(tokenId);
    return b.ms > 0 ? null : { retryAfterSeconds: Math.max(1, Math.ceil(-b.ms / this.limits.msPerSecond)) };
  }

  /**
   * Runs `evaluate` for the key and charges the time it took; throws a 429 problem (`limit`
   * `evaluation-ms-per-second`, `retryAfterSeconds`) instead when the key has no time left.
   */
  run<T>(tokenId: string, evaluate: () => T): T {
    const over = this.admit(tokenId);
    if (over) {
      throw problem(
        'too-many-requests',
        `This SDK key used its ${this.limits.msPerSecond} ms per second of server-side evaluation; retry in ${over.retryAfterSeconds} s.`,
        {
          extensions: { limit: 'evaluation-ms-per-second', allowance: this.limits.msPerSecond, retryAfterSeconds: over.retryAfterSeconds },
        },
      );
    }
    const start = this.clock();
    try {
      return evaluate();
    } finally {
      this.bucket(tokenId).ms -= this.clock() - start;
    }
  }
}
