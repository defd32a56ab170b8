/**
 * Failed authentication, rate-limited per client address. Secrets are 256-bit random, so guessing is hopeless; the
 * point is to stop a misconfigured or hostile client from hammering the token checks and flooding the logs, and to
 * make credential scanning visible (`aviary_auth_rate_limited_total`).
 *
 * Policy: an address that fails authentication `limit` times within `windowMs` is refused (429 with Retry-After) on
 * every authenticated route until that window ends. Fixed windows per address keep the state to two numbers per
 * address; the table is bounded, so a flood of spoofed addresses cannot grow memory without limit.
 */

/** Tuning of {@link AuthFailureLimiter}. */
export interface AuthFailureLimiterOptions {
  /** Failures allowed per window before the address is refused. Default 30. */
  limit?: number;
  /** Window length in milliseconds. Default 60,000. */
  windowMs?: number;
  /** Addresses tracked at most; the oldest windows are dropped first. Default 10,000. */
  maxClients?: number;
  /** Clock (epoch ms). */
  now?: () => number;
}

interface Window {
  start: number;
  failures: number;
}

/** Counts authentication failures per address and says when an address is refused. Pure apart from the clock. */
export class AuthFailureLimiter {
  readonly limit: number;
  readonly windowMs: number;
  private readonly maxClients: number;
  private readonly now: () => number;
  // Insertion-ordered: a window is re-inserted when it restarts, so the first entries are the oldest.
  private readonly windows = new Map<string, Window>();

  constructor(options: AuthFailureLimiterOptions = {}) {
    this.limit = Math.max(1, options.limit ?? 30);
    this.windowMs = Math.max(1, options.windowMs ?? 60_000);
    this.maxClients = Math.max(1, options.maxClients ?? 10_000);
    this.now = options.now ?? Date.now;
  }

  /** Records one failed authentication from `address`. */
  recordFailure(address: string): void {
    const now = this.now();
    let w = this.windows.get(address);
    if (!w || now - w.start >= this.windowMs) {
      this.windows.delete(address);
      w = { start: now, failures: 0 };
      this.windows.set(address, w);
      this.evict(now);
    }
    w.failures++;
  }

  /** Milliseconds until `address` may authenticate again; 0 when it is not refused. */
  blockedForMs(address: string): number {
    const w = this.windows.get(address);
    if (!w || w.failures < this.limit) return 0;
    const left = w.start + this.windowMs - this.now();
    if (left <= 0) {
      this.windows.delete(address);
      return 0;
    }
    return left;
  }

  /** Number of addresses currently tracked (for tests and metrics). */
  get size(): number {
    return this.windows.size;
  }

  private evict(now: number): void {
    for (const [address, w] of this.windows) {
      if (this.windows.size <= this.maxClients && now - w.start < this.windowMs) break;
      this.windows.delete(address);
    }
  }
}
