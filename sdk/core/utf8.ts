/**
 * UTF-8 encoding into a reusable buffer without allocating per call. Encoded by hand rather than with
 * `TextEncoder.encodeInto`, which needs a `subarray` view (an allocation) per call to write at an offset. A lone
 * surrogate encodes as U+FFFD (EF BF BD), exactly as `TextEncoder` does; test/core/bucket.test.ts checks the bytes
 * against the murmurhash package, which uses `TextEncoder`.
 */

/**
 * A growable byte buffer. `bytes` may be replaced by a larger array when a write does not fit, so read it after
 * writing, never before.
 */
export class ByteBuffer {
  bytes = new Uint8Array(64);

  /**
   * Writes the UTF-8 bytes of `s` at `offset`, keeping `bytes[0, offset)` intact, and returns the end offset.
   */
  writeUtf8(s: string, offset: number): number {
    const n = s.length;
    // A UTF-16 code unit encodes to at most 3 UTF-8 bytes (a surrogate pair, two units, to 4).
    if (offset + n * 3 > this.bytes.length) {
      const grown = new Uint8Array((offset + n * 3) * 2);
      grown.set(this.bytes);
      this.bytes = grown;
    }
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
          const d = s.charCodeAt(i + 1); // NaN past the end
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
}
