/**
 * Reconnect policy: capped exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
 * Jitter"), reset once a connection has stayed up long enough to count as stable. Pure: the clock and the random
 * source are injected, so tests drive it without sleeping.
 */

/** Tuning of the reconnect policy. */
export interface BackoffOptions {
  /** Upper bound of the first delay (ms). Default 500. */
  initialMs?: number;
  /** No delay exceeds this (ms). Default 30,000. */
  maxMs?: number;
  /** A connection that stayed up this long resets the attempt count (ms). Default 30,000. */
  stableAfterMs?: number;
}

export class Backoff {
  private _attempt = 0;
  /** When the connection came up; Infinity while it is down (then it never counts as stable). */
  private _connectedAt = Infinity;

  constructor(
    private readonly _options: BackoffOptions = {},
    private readonly _random: () => number = Math.random,
  ) {}

  /** The number of consecutive failed attempts so far. */
  get attempts(): number {
    return this._attempt;
  }

  /**
   * The delay before the next attempt: uniform in [0, min(max, initial × 2^attempt)). Full jitter spreads a crowd of
   * clients that lost the same server evenly over the window instead of bunching them at its edges.
   */
  next(): number {
    const initial = Math.max(1, this._options.initialMs ?? 500);
    const ceiling = Math.min(Math.max(initial, this._options.maxMs ?? 30_000), initial * 2 ** Math.min(this._attempt++, 30));
    return Math.floor(this._random() * ceiling);
  }

  /** The connection is up (it only counts as a success once it has been up `stableAfterMs`). */
  connected(now: number): void {
    this._connectedAt = now;
  }

  /**
   * The connection went down. If it had been up long enough, start over from the first delay; a server that
   * accepts and then drops connections at once must not reset the backoff, or clients would hammer it.
   */
  disconnected(now: number): void {
    if (now - this._connectedAt >= (this._options.stableAfterMs ?? 30_000)) this._attempt = 0;
    this._connectedAt = Infinity;
  }
}
