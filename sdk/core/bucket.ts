/**
 * Bucketing (CONTRACT §3, fixed): `murmur3_x86_32(UTF-8(salt + "/" + String(value)), seed 0) mod 100000`.
 */
import { murmur3Blocks, murmur3Finish } from './murmur3.js';
import { ByteBuffer } from './utf8.js';

/** Number of buckets: a percent with three decimals is a whole number of buckets. */
export const BUCKETS = 100_000;

/** The bucket (0–99999) of `value` under `salt`, exactly as CONTRACT §3 defines it. */
export function bucket(salt: string, value: string): number {
  return new SaltedBucketer(salt).bucket(value);
}

/**
 * A bucketer for one salt: the bytes of `salt + "/"` sit at the start of a private buffer and their whole 4-byte
 * blocks are hashed once, so each call only encodes and hashes the value.
 */
export class SaltedBucketer {
  private readonly _buffer = new ByteBuffer();
  private readonly _prefixLength: number;
  private readonly _prefixBlocks: number;
  private readonly _prefixState: number;

  constructor(readonly salt: string) {
    this._prefixLength = this._buffer.writeUtf8(salt + '/', 0);
    this._prefixBlocks = this._prefixLength & ~3;
    this._prefixState = murmur3Blocks(0, this._buffer.bytes, 0, this._prefixBlocks);
  }

  /** Same result as `bucket(this.salt, value)`. */
  bucket(value: string): number {
    const end = this._buffer.writeUtf8(value, this._prefixLength);
    const bytes = this._buffer.bytes;
    const blocks = this._prefixBlocks + ((end - this._prefixBlocks) & ~3);
    const h = murmur3Blocks(this._prefixState, bytes, this._prefixBlocks, blocks);
    return murmur3Finish(h, bytes, blocks, end) % BUCKETS;
  }
}
