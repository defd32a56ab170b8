/**
 * Reconnect policy: jittered backoff whose windows grow by a third per failed attempt, up to a cap, reset once a
 * connection has stayed up long enough to count as stable. Pure: the random source is injected and the clock is
 * passed in, so tests drive it without sleeping. docs/stream-protocol.md ("Reconnect policy") has the numbers.
 */

/** Tuning of the reconnect policy. */
export interface BackoffOptions {
  /**
   * Window of the first attempt after a stable connection was lost (or the first one failed), in ms: the attempt
   * comes at a uniformly random moment within it, so a fleet that lost the same server spreads over it. Each further
   * window is 4/3 of the one before. Default 2,000.
   */
  initialMs?: number;
  /** No window exceeds this (ms). Default 30,000. */
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
   * The delay before the next attempt. The n-th window is min(max, initial × (4/3)^n). The first delay (n = 0) is
   * uniform over its whole window (full jitter): a crowd that lost its server at the same instant spreads evenly over
   * it. Later ones are uniform over the upper half of theirs (equal jitter): a client whose attempts keep failing
   * waits at least half a window each time, so a server that refuses or drops connections at once is not hammered,
   * and the crowd stays spread. `windowMs` is the server's goodbye hint (`reconnectWindowMs`): it replaces the first
   * window only, never a window that already grew after failures.
   */
  next(windowMs?: number): number {
    const o = this._options;
    const initial = Math.max(1, o.initialMs ?? 2_000);
    const n = this._attempt++;
    const w = Math.min(Math.max(initial, o.maxMs ?? 30_000), n ? initial * (4 / 3) ** n : (windowMs ?? initial));
    return Math.floor((w * (n ? 1 + this._random() : 2 * this._random())) / 2);
  }

  /** The connection is up (it only counts as a success once it has been up `stableAfterMs`). */
  connected(now: number): void {
    this._connectedAt = now;
  }

  /**
   * The connection went down. If it had been up long enough, start over from the first window; a server that
   * accepts and then drops connections at once must not reset the backoff, or clients would hammer it.
   */
  disconnected(now: number): void {
    if (now - this._connectedAt >= (this._options.stableAfterMs ?? 30_000)) this._attempt = 0;
    this._connectedAt = Infinity;
  }
}
