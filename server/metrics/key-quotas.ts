/**
 * Per-SDK-key ingest quotas: rows and bytes of metrics reports per minute, as token buckets refilled continuously
 * at that rate, holding at most `BURST_SECONDS` of it: a key may catch up on a short outage, but a flood is held to
 * the rate within seconds instead of spending a whole minute's allowance at once. Any key is held by its own budget, so one key (a client-side key is public)
 * cannot spend the server's ingest capacity, its queue or its disk for the others. In memory: a restarted server
 * starts every key with a full bucket, which is at most one extra minute's allowance.
 */

/** The per-key allowances (docs/operations.md, "SDK-key limits"). */
export interface KeyQuotaLimits {
  /** Stats rows per key per minute (`AVIARY_METRICS_KEY_ROWS_PER_MINUTE`). Default 1,200,000. */
  rowsPerMinute: number;
  /** Request bytes per key per minute (`AVIARY_METRICS_KEY_BYTES_PER_MINUTE`). Default 256 MiB. */
  bytesPerMinute: number;
}

export const DEFAULT_KEY_QUOTAS: KeyQuotaLimits = { rowsPerMinute: 1_200_000, bytesPerMinute: 256 * 1024 * 1024 };

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
/** How many seconds of a key's allowance its bucket holds. */
export const BURST_SECONDS = 10;

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
      b = { rows: this.capacity('rows'), bytes: this.capacity('bytes'), at: now };
      this.buckets.set(tokenId, b);
      return b;
    }
    const elapsed = Math.max(0, now - b.at);
    b.rows = Math.min(this.capacity('rows'), b.rows + (elapsed / MINUTE) * this.limits.rowsPerMinute);
    b.bytes = Math.min(this.capacity('bytes'), b.bytes + (elapsed / MINUTE) * this.limits.bytesPerMinute);
    b.at = now;
    return b;
  }

  private capacity(kind: 'rows' | 'bytes'): number {
    return ((kind === 'rows' ? this.limits.rowsPerMinute : this.limits.bytesPerMinute) * BURST_SECONDS) / 60;
  }

  /**
   * Takes `amount` of one allowance from the key's bucket, or answers the quota it would exceed (taking nothing).
   * A full bucket always pays (going into debt), so a single request larger than the bucket is slowed, not refused
   * forever.
   */
  take(tokenId: string, kind: 'rows' | 'bytes', amount: number): QuotaExceeded | null {
    const b = this.bucket(tokenId);
    const allowance = kind === 'rows' ? this.limits.rowsPerMinute : this.limits.bytesPerMinute;
    const capacity = this.capacity(kind);
    const have = b[kind];
    if (have >= amount || have >= capacity) {
      b[kind] = have - amount;
      return null;
    }
    const missing = Math.min(amount, capacity) - have;
    return {
      limit: kind === 'rows' ? 'rows-per-minute' : 'bytes-per-minute',
      allowance,
      retryAfterSeconds: Math.max(1, Math.ceil(((missing / allowance) * MINUTE) / 1000)),
    };
  }
}
