import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import murmurhash from 'murmurhash';
import { describe, expect, it } from 'vitest';
import { murmur3 } from '../../sdk/core/index.js';

interface Hashes {
  smhasher_verification: { expected: string };
  bytes: { hex: string; seed: number; hash: number }[];
  strings: { input: string; seed: number; hash: number }[];
}
const vectors = JSON.parse(readFileSync(join(import.meta.dirname, '../cases/hashes.json'), 'utf8')) as Hashes;
const utf8 = (s: string) => new TextEncoder().encode(s);

describe('murmur3 x86_32', () => {
  it.each(vectors.bytes.map((v) => [v.hex, v.seed, v.hash] as const))('hashes bytes %s with seed %d to %d', (hex, seed, hash) => {
    expect(murmur3(Uint8Array.from(Buffer.from(hex, 'hex')), seed)).toBe(hash);
  });

  it.each(vectors.strings.map((v) => [v.input, v.seed, v.hash] as const))('hashes the UTF-8 of %j with seed %d to %d', (input, seed, hash) => {
    expect(murmur3(utf8(input), seed)).toBe(hash);
  });

  it('passes the SMHasher verification procedure', () => {
    const out = new Uint8Array(256 * 4);
    const view = new DataView(out.buffer);
    for (let i = 0; i < 256; i++) {
      const key = Uint8Array.from({ length: i }, (_, j) => j);
      view.setUint32(i * 4, murmur3(key, 256 - i), true);
    }
    expect('0x' + murmur3(out, 0).toString(16).padStart(8, '0')).toBe(vectors.smhasher_verification.expected);
  });

  it('agrees with the murmurhash package on any bytes and seed', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat({ max: 0xffffffff }), (bytes, seed) => {
        expect(murmur3(bytes, seed)).toBe(murmurhash.v3(bytes, seed));
      }),
      { numRuns: 2000 },
    );
  });

  it('hashes only the first `length` bytes of a larger buffer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 1, maxLength: 8 }), (bytes, junk) => {
        const buffer = new Uint8Array(bytes.length + junk.length);
        buffer.set(bytes);
        buffer.set(junk, bytes.length);
        expect(murmur3(buffer, 0, bytes.length)).toBe(murmur3(bytes));
      }),
    );
  });
});
