/**
 * MurmurHash3 x86_32 (Austin Appleby's SMHasher reference), over bytes, returning an unsigned 32-bit integer.
 *
 * Written here rather than calling `murmurhash.v3`: that function only hashes a whole `Uint8Array` (so hashing part
 * of a reused buffer would need a fresh `subarray` view per call) and encodes strings with a new `TextEncoder` each
 * time. The output is identical; `test/core/murmur3.test.ts` checks it against the package, the published vectors
 * and SMHasher's verification value.
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/**
 * Mixes the whole 4-byte blocks of `bytes[from, to)` into the running state `h` and returns the new state.
 * `to - from` must be a multiple of 4. Exposed so a compiled rollout can pre-hash the blocks of its salt prefix.
 */
export function murmur3Blocks(h: number, bytes: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  return h;
}

/**
 * Finishes a hash whose whole blocks up to `tailStart` are already mixed into `h`: mixes the 0–3 tail bytes
 * `bytes[tailStart, length)` and applies the finalizer. `length` is the total number of bytes hashed.
 */
export function murmur3Finish(h: number, bytes: Uint8Array, tailStart: number, length: number): number {
  const rest = length - tailStart;
  if (rest > 0) {
    let k = bytes[tailStart]!;
    if (rest > 1) k ^= bytes[tailStart + 1]! << 8;
    if (rest > 2) k ^= bytes[tailStart + 2]! << 16;
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * MurmurHash3 x86_32 of `bytes` (or of its first `length` bytes) with `seed`; unsigned 32-bit result.
 * @param bytes the input bytes
 * @param seed the seed, taken as an unsigned 32-bit integer (default 0)
 * @param length how many bytes from the start to hash (default: all)
 */
export function murmur3(bytes: Uint8Array, seed = 0, length: number = bytes.length): number {
  const blocks = length & ~3;
  const h = murmur3Blocks(seed | 0, bytes, 0, blocks);
  return murmur3Finish(h, bytes, blocks, length);
}
