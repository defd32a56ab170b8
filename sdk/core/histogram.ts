/**
 * Fixed log-scale latency histogram buckets. Every SDK and the server use the same bucket edges, so histograms
 * from many SDK instances merge exactly by adding counts per bucket index.
 *
 * Bucket i (0 < i < LATENCY_BUCKETS - 1) holds latencies in [2^((i-OFFSET)/8), 2^((i-OFFSET+1)/8)) ms: eight
 * buckets per doubling, so a bucket is about 9% wide and a percentile read from it is within about 4.5% of the
 * true value. Bucket 0 holds everything below 2^-10 ms (~1 µs, including 0); the last bucket everything from
 * 2^20 ms (~17.5 minutes) up.
 */
const SUB_BUCKETS = 8;
const OFFSET = 80; // 10 doublings below 1 ms
export const LATENCY_BUCKETS = OFFSET + SUB_BUCKETS * 20 + 1;

/** The bucket index for a latency in milliseconds. Non-finite or negative input lands in bucket 0. */
export function latencyBucket(ms: number): number {
  if (!(ms > 0)) return 0;
  const i = Math.floor(Math.log2(ms) * SUB_BUCKETS) + OFFSET;
  if (i < 0) return 0;
  return i >= LATENCY_BUCKETS ? LATENCY_BUCKETS - 1 : i;
}

/** Lower edge of bucket `i` in milliseconds (0 for bucket 0). */
export function bucketLowerMs(i: number): number {
  return i <= 0 ? 0 : 2 ** ((i - OFFSET) / SUB_BUCKETS);
}

/** Representative value of bucket `i`: the geometric middle of its edges. */
export function bucketMidMs(i: number): number {
  if (i <= 0) return 0;
  return 2 ** ((i - OFFSET + 0.5) / SUB_BUCKETS);
}

/** A sparse histogram: bucket index (as a string, for JSON) → count. */
export type SparseHistogram = Record<string, number>;

/** Adds `from` into `into` (exact: counts per bucket add). */
export function mergeHistogram(into: SparseHistogram, from: SparseHistogram): SparseHistogram {
  for (const k in from) into[k] = (into[k] ?? 0) + (from[k] ?? 0);
  return into;
}

/** The q-quantile (0 < q ≤ 1) of a sparse histogram in milliseconds, or null when it is empty. */
export function histogramQuantile(h: SparseHistogram, q: number): number | null {
  const entries = Object.keys(h)
    .map((k) => [Number(k), h[k] ?? 0] as const)
    .filter(([, c]) => c > 0)
    .sort((a, b) => a[0] - b[0]);
  let total = 0;
  for (const [, c] of entries) total += c;
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [i, c] of entries) {
    seen += c;
    if (seen >= rank) return bucketMidMs(i);
  }
  return bucketMidMs(entries[entries.length - 1]![0]);
}
