/**
 * UTF-8 encoding into reusable buffers without allocating per call. Strings that are pure ASCII (the common case
 * for user ids) are copied byte by byte without the encoder; anything else goes through `TextEncoder.encodeInto`,
 * which, like `TextEncoder.encode`, writes U+FFFD for a lone surrogate.
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
    // A UTF-16 code unit encodes to at most 3 UTF-8 bytes.
    if (offset + n * 3 > this.bytes.length) this.grow(offset + n * 3);
    const b = this.bytes;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      b[offset + i] = c;
    }
    if (i === n) return offset + n;
    const { written } = encoder.encodeInto(i === 0 ? s : s.slice(i), b.subarray(offset + i));
    return offset + i + written;
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
