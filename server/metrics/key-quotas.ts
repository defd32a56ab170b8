/**
 * Per-SDK-key ingest quotas: rows and bytes of metrics reports per minute, as token buckets (capacity one minute's
 * allowance, refilled continuously). Any key is held by its own budget, so one key (a client-side key is public)
 * cannot spend the server's ingest capacity, its queue or its disk for the others. In memory: a restarted server
 * starts every key with a full bucket, which is at most one extra minute's allowance.
 */

/** The per-key allowances (docs/operations.md, "SDK-key limits"). */
export interface KeyQuotaLimits {
  /** Stats rows per key per minute (`AVIARY_METRICS_KEY_ROWS_PER_MINUTE`). Default 600,000. */
  rowsPerMinute: number;
  /** Request bytes per key per minute (`AVIARY_METRICS_KEY_BYTES_PER_MINUTE`). Default 256 MiB. */
  bytesPerMinute: number;
}

export const DEFAULT_KEY_QUOTAS: KeyQuotaLimits = { rowsPerMinute: 600_000, bytesPerMinute: 256 * 1024 * 1024 };

/** A quota a request would exceed: which one, and when enough will have been refilled. */
export interface QuotaExceeded {
  limit: 'rows-per-minute' | 'bytes-per-minute';
  allowance: number;
  retryAfterSeconds: number;
}

interface Bucket {
  rows: number;
  bytes: number;
  at: number;
}

const MINUTE = 60_000;

export class KeyQuotas {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly limits: KeyQuotaLimits,
    private readonly now: () => number,
  ) {}

  private bucket(tokenId: string): Bucket {
    const now = this.now();
    let b = this.buckets.get(tokenId);
    if (!b) {
      b = { rows: this.limits.rowsPerMinute, bytes: this.limits.bytesPerMinute, at: now };
      this.buckets.set(tokenId, b);
      return b;
    }
    const elapsed = Math.max(0, now - b.at);
    b.rows = Math.min(this.limits.rowsPerMinute, b.rows + (elapsed / MINUTE) * this.limits.rowsPerMinute);
    b.bytes = Math.min(this.limits.bytesPerMinute, b.bytes + (elapsed / MINUTE) * this.limits.bytesPerMinute);
    b.at = now;
    return b;
  }

  /**
   * Takes `amount` of one allowance from the key's bucket, or answers the quota it would exceed (taking nothing).
   * A full bucket always pays (going into debt), so a single request larger than a minute's allowance is slowed, not
   * refused forever.
   */
  take(tokenId: string, kind: 'rows' | 'bytes', amount: number): QuotaExceeded | null {
    const b = this.bucket(tokenId);
    const allowance = kind === 'rows' ? this.limits.rowsPerMinute : this.limits.bytesPerMinute;
    const have = b[kind];
    if (have >= amount || have >= allowance) {
      b[kind] = have - amount;
      return null;
    }
    const missing = Math.min(amount, allowance) - have;
    return {
      limit: kind === 'rows' ? 'rows-per-minute' : 'bytes-per-minute',
      allowance,
      retryAfterSeconds: Math.max(1, Math.ceil(((missing / allowance) * MINUTE) / 1000)),
    };
  }
}
