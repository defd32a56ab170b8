/**
 * Bucketing (CONTRACT §3, fixed): `murmur3_x86_32(UTF-8(salt + "/" + String(value)), seed 0) mod 100000`.
 */
import { murmur3, murmur3Blocks, murmur3Finish } from './murmur3.js';
import { ByteBuffer, utf8 } from './utf8.js';

/** Number of buckets: a percent with three decimals is a whole number of buckets. */
export const BUCKETS = 100_000;

const shared = new ByteBuffer(256);

/** The bucket (0–99999) of `value` under `salt`, exactly as CONTRACT §3 defines it. */
export function bucket(salt: string, value: string): number {
  let end = shared.writeUtf8(salt, 0);
  end = shared.writeUtf8('/', end);
  end = shared.writeUtf8(value, end);
  return murmur3(shared.bytes, 0, end) % BUCKETS;
}

/**
 * A bucketer for one salt: the bytes of `salt + "/"` sit at the start of a private buffer and their whole 4-byte
 * blocks are hashed once, so each call only encodes and hashes the value.
 */
export class SaltedBucketer {
  private readonly buffer: ByteBuffer;
  private readonly prefixLength: number;
  private readonly prefixBlocks: number;
  private readonly prefixState: number;

  constructor(readonly salt: string) {
    const prefix = utf8(salt + '/');
    this.buffer = new ByteBuffer(Math.max(64, prefix.length + 64));
    this.buffer.bytes.set(prefix);
    this.prefixLength = prefix.length;
    this.prefixBlocks = prefix.length & ~3;
    this.prefixState = murmur3Blocks(0, prefix, 0, this.prefixBlocks);
  }

  /** Same result as `bucket(this.salt, value)`. */
  bucket(value: string): number {
    const end = this.buffer.writeUtf8(value, this.prefixLength);
    const bytes = this.buffer.bytes;
    const blocks = this.prefixBlocks + ((end - this.prefixBlocks) & ~3);
    const h = murmur3Blocks(this.prefixState, bytes, this.prefixBlocks, blocks);
    return murmur3Finish(h, bytes, blocks, end) % BUCKETS;
  }
}
