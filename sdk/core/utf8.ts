/**
 * UTF-8 encoding into reusable buffers without allocating per call. Encoded by hand rather than with
 * `TextEncoder.encodeInto`, which needs a `subarray` view (an allocation) per call to write at an offset. A lone
 * surrogate encodes as U+FFFD (EF BF BD), exactly as `TextEncoder` does; test/core/bucket.test.ts checks the bytes
 * against the murmurhash package, which uses `TextEncoder`.
 */

const encoder = new TextEncoder();

/**
 * A growable byte buffer. `bytes` may be replaced by a larger array when a write does not fit, so read it after
 * writing, never before.
 */
export class ByteBuffer {
  bytes: Uint8Array;
  constructor(capacity = 256) {
    this.bytes = new Uint8Array(capacity);
  }

  /**
   * Writes the UTF-8 bytes of `s` at `offset`, keeping `bytes[0, offset)` intact, and returns the end offset.
   */
  writeUtf8(s: string, offset: number): number {
    const n = s.length;
    // A UTF-16 code unit encodes to at most 3 UTF-8 bytes (a surrogate pair, two units, to 4).
    if (offset + n * 3 > this.bytes.length) this.grow(offset + n * 3);
    const b = this.bytes;
    let o = offset;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        b[o++] = c;
      } else if (c < 0x800) {
        b[o++] = 0xc0 | (c >> 6);
        b[o++] = 0x80 | (c & 63);
      } else {
        if (c >= 0xd800 && c <= 0xdfff) {
          const d = i + 1 < n ? s.charCodeAt(i + 1) : 0;
          if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
            const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
            i++;
            b[o++] = 0xf0 | (cp >> 18);
            b[o++] = 0x80 | ((cp >> 12) & 63);
            b[o++] = 0x80 | ((cp >> 6) & 63);
            b[o++] = 0x80 | (cp & 63);
            continue;
          }
          c = 0xfffd; // a lone surrogate, as TextEncoder encodes it
        }
        b[o++] = 0xe0 | (c >> 12);
        b[o++] = 0x80 | ((c >> 6) & 63);
        b[o++] = 0x80 | (c & 63);
      }
    }
    return o;
  }

  private grow(min: number): void {
    let cap = this.bytes.length * 2;
    while (cap < min) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.bytes);
    this.bytes = next;
  }
}

/** The UTF-8 bytes of `s` as a new array (for compile-time use, not the hot path). */
export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}
