/**
 * Bucketing (CONTRACT §3, fixed): `murmur3_x86_32(UTF-8(salt + "/" + String(value)), seed 0) mod 100000`.
 */
import { murmur3Feed, murmur3Utf8, type Murmur3State } from './murmur3.js';

/** Number of buckets: a percent with three decimals is a whole number of buckets. */
export const BUCKETS = 100_000;

/** The bucket (0–99999) of `value` under `salt`, exactly as CONTRACT §3 defines it. */
export function bucket(salt: string, value: string): number {
  return new SaltedBucketer(salt).bucket(value);
}

/** A bucketer for one salt: the bytes of `salt + "/"` are hashed once, so each call only hashes the value's. */
export class SaltedBucketer {
  private readonly _prefix: Murmur3State;

  constructor(readonly salt: string) {
    this._prefix = murmur3Feed(new Int32Array(3), salt + '/');
  }

  /** Same result as `bucket(this.salt, value)`. */
  bucket(value: string): number {
    return murmur3Utf8(this._prefix, value) % BUCKETS;
  }
}
