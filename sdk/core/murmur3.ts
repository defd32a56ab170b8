/**
 * MurmurHash3 x86_32 (Austin Appleby's SMHasher reference), returning an unsigned 32-bit integer: over bytes, or
 * over the UTF-8 encoding of strings fed in one after another without building the bytes (what bucketing hashes).
 *
 * Written here rather than calling `murmurhash.v3`: that function only hashes a whole `Uint8Array` and encodes
 * strings with a new `TextEncoder` each time. The output is identical; `test/core/murmur3.test.ts` and
 * `test/core/bucket.test.ts` check it against the package, the published vectors and SMHasher's verification value.
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** Scrambles a block (or the zero-padded tail) `k`. */
function scramble(k: number): number {
  k = Math.imul(k, C1);
  return Math.imul((k << 15) | (k >>> 17), C2);
}

/** Mixes a whole 4-byte block `k` (little-endian) into the running state `h`. */
function mixBlock(h: number, k: number): number {
  h ^= scramble(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** Finishes a hash: `tail` holds the 0–3 bytes after the last whole block, `length` is the number of bytes hashed. */
function finish(h: number, tail: number, length: number): number {
  if (length & 3) h ^= scramble(tail);
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * MurmurHash3 x86_32 of `bytes` (or of its first `length` bytes) with `seed`; unsigned 32-bit result.
 * @param bytes the input bytes
 * @param seed the seed, taken as an unsigned 32-bit integer (default 0)
 * @param length how many bytes from the start to hash (default: all)
 */
export function murmur3(bytes: Uint8Array, seed = 0, length: number = bytes.length): number {
  let h = seed | 0;
  let k = 0;
  for (let i = 0; i < length; i++) {
    k |= bytes[i]! << ((i & 3) << 3);
    if ((i & 3) === 3) {
      h = mixBlock(h, k);
      k = 0;
    }
  }
  return finish(h, k, length);
}

/**
 * A MurmurHash3 x86_32 in progress over UTF-8 bytes: `[h, pending tail bytes, bytes so far]`, never modified once
 * made. A lone surrogate encodes as U+FFFD (EF BF BD), exactly as `TextEncoder` does.
 */
export type Murmur3State = Int32Array;

/**
 * Mixes the UTF-8 bytes of `s` into `state` and returns the finished hash; or, given `out`, leaves the state
 * reached there instead (and returns 0). Hashing a value for a bucket thus allocates nothing.
 */
function feed(state: Murmur3State, s: string, out: Int32Array | null): number {
  let h = state[0]!;
  let k = state[1]!;
  let n = state[2]!;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    // The code point's UTF-8 bytes, the first in the low byte, and how many there are.
    let bytes = c;
    let count = 1;
    if (c >= 0x80) {
      const d = s.charCodeAt(i + 1); // NaN past the end
      if (c >= 0xd800 && c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        count = 4;
      } else {
        if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // a lone surrogate
        count = c < 0x800 ? 2 : 3;
      }
      // Continuation bytes carry six bits each, last bits last; the lead byte the rest, marked by the count.
      bytes = 0;
      for (let j = count - 1; j > 0; j--, c >>= 6) bytes = (bytes << 8) | 0x80 | (c & 63);
      bytes = (bytes << 8) | ((0xf00 >> count) & 0xff) | c;
    }
    for (; count > 0; count--, bytes >>>= 8) {
      k |= (bytes & 0xff) << ((n & 3) << 3);
      if ((++n & 3) === 0) {
        h = mixBlock(h, k);
        k = 0;
      }
    }
  }
  if (out === null) return finish(h, k, n);
  out[0] = h;
  out[1] = k;
  out[2] = n;
  return 0;
}

/** `state` continued with the UTF-8 bytes of `s` (e.g. a bucketing salt prefix, hashed once). */
export function murmur3Feed(state: Murmur3State, s: string): Murmur3State {
  const out = new Int32Array(3);
  feed(state, s, out);
  return out;
}

/** The hash of `state` continued with the UTF-8 bytes of `s`. */
export function murmur3Utf8(state: Murmur3State, s: string): number {
  return feed(state, s, null);
}
