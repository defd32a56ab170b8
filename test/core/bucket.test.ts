import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import murmurhash from 'murmurhash';
import { describe, expect, it } from 'vitest';
import { bucket, compileEnvironment, evaluate, SaltedBucketer, type FlagConfig } from '../../sdk/core/index.js';

const vectors = JSON.parse(readFileSync(join(import.meta.dirname, '../cases/buckets.json'), 'utf8')) as {
  cases: { salt: string; value: string; bucket: number }[];
};

const anyString = fc.string({ unit: 'binary', maxLength: 40 });

/** A two-variant rollout flag; `canaryFirst` decides which weight is listed first. */
function rolloutFlag(key: string, canaryThousandths: number, salt: string | undefined, canaryFirst = true): FlagConfig {
  const canary = { variant: 'canary', percent: canaryThousandths / 1000 };
  const control = { variant: 'control', percent: (100_000 - canaryThousandths) / 1000 };
  return {
    key,
    kind: 'string',
    variants: [
      { key: 'canary', value: 'canary' },
      { key: 'control', value: 'control' },
    ],
    state: {
      enabled: true,
      offVariant: 'control',
      targets: [],
      rules: [],
      fallthrough: { rollout: { weights: canaryFirst ? [canary, control] : [control, canary], ...(salt === undefined ? {} : { salt }) } },
      version: 1,
    },
  };
}

describe('bucketing (CONTRACT §3)', () => {
  it.each(vectors.cases.map((c) => [c.salt, c.value, c.bucket] as const))('bucket(%j, %j) is %d', (salt, value, expected) => {
    expect(bucket(salt, value)).toBe(expected);
    expect(new SaltedBucketer(salt).bucket(value)).toBe(expected);
  });

  it('equals murmurhash.v3 of the UTF-8 of salt/value mod 100000 for any strings', () => {
    fc.assert(
      fc.property(anyString, anyString, (salt, value) => {
        const expected = murmurhash.v3(`${salt}/${value}`) % 100_000;
        expect(bucket(salt, value)).toBe(expected);
        const b = new SaltedBucketer(salt);
        expect(b.bucket(value)).toBe(expected);
        expect(b.bucket(value)).toBe(expected); // the reused buffer carries nothing over
      }),
      { numRuns: 3000 },
    );
  });

  it('handles values longer than the reused buffer', () => {
    const long = 'ü'.repeat(5000);
    expect(new SaltedBucketer('s').bucket(long)).toBe(murmurhash.v3(`s/${long}`) % 100_000);
  });

  it('spreads 100,000 keys uniformly over 100 ranges (chi-square)', () => {
    const bins = new Array<number>(100).fill(0);
    const b = new SaltedBucketer('new-checkout');
    for (let i = 0; i < 100_000; i++) bins[Math.floor(b.bucket(`user-${i}`) / 1000)]!++;
    const chi2 = bins.reduce((s, n) => s + (n - 1000) ** 2 / 1000, 0);
    // 99 degrees of freedom: the 0.999 quantile is 148.2.
    expect(chi2).toBeLessThan(148.2);
  });

  it('places keys independently under different salts', () => {
    const a = new SaltedBucketer('flag-a');
    const b = new SaltedBucketer('flag-b');
    let both = 0;
    let inA = 0;
    let inB = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = a.bucket(`user-${i}`) < 10_000;
      const y = b.bucket(`user-${i}`) < 10_000;
      if (x) inA++;
      if (y) inB++;
      if (x && y) both++;
    }
    // Independent 10% rollouts overlap on about 1% of keys (sd ≈ 31); one salt would overlap on 10%.
    expect(Math.abs(both - (inA * inB) / 100_000)).toBeLessThan(160);
  });
});

describe('rollouts', () => {
  it('a context keeps the canary when the canary percent grows (any salt, percents, keys, weight order)', () => {
    fc.assert(
      fc.property(
        fc.option(anyString, { nil: undefined }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.array(fc.string({ maxLength: 20 }), { minLength: 1, maxLength: 30 }),
        fc.boolean(),
        (salt, x, y, keys, canaryFirst) => {
          const [low, high] = x <= y ? [x, y] : [y, x];
          const before = compileEnvironment({ environment: 'e', version: 1, segments: [], flags: [rolloutFlag('ramp', low, salt, canaryFirst)] });
          const after = compileEnvironment({ environment: 'e', version: 1, segments: [], flags: [rolloutFlag('ramp', high, salt, canaryFirst)] });
          for (const key of keys) {
            if (evaluate(before, 'ramp', { key }, '').variant === 'canary') {
              expect(evaluate(after, 'ramp', { key }, '').variant).toBe('canary');
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('flags sharing a salt form a release ring: the smaller rollout is inside the larger', () => {
    const env = compileEnvironment({
      environment: 'e',
      version: 1,
      segments: [],
      flags: [rolloutFlag('ring-small', 5_000, 'ring-1'), rolloutFlag('ring-large', 20_000, 'ring-1'), rolloutFlag('own-salt', 5_000, undefined)],
    });
    let small = 0;
    let ownSaltAlsoSmall = 0;
    for (let i = 0; i < 10_000; i++) {
      const ctx = { key: `user-${i}` };
      const s = evaluate(env, 'ring-small', ctx, '');
      const l = evaluate(env, 'ring-large', ctx, '');
      expect(s.reason.bucket).toBe(l.reason.bucket);
      if (s.variant === 'canary') {
        small++;
        expect(l.variant).toBe('canary');
        if (evaluate(env, 'own-salt', ctx, '').variant === 'canary') ownSaltAlsoSmall++;
      }
    }
    expect(small).toBeGreaterThan(400);
    // A flag salted by its own key is independent of the ring: about 5% of the ring's canaries.
    expect(ownSaltAlsoSmall).toBeLessThan(small * 0.12);
  });

  it('each weight takes round(percent × 1000) buckets in order and the last takes the remainder', () => {
    const flag: FlagConfig = {
      key: 'edges',
      kind: 'string',
      variants: ['a', 'b', 'c'].map((k) => ({ key: k, value: k })),
      state: {
        enabled: true,
        offVariant: 'a',
        targets: [],
        rules: [],
        version: 1,
        fallthrough: {
          rollout: {
            weights: [
              { variant: 'a', percent: 0.001 },
              { variant: 'b', percent: 0 },
              { variant: 'c', percent: 99.999 },
            ],
          },
        },
      },
    };
    const env = compileEnvironment({ environment: 'e', version: 1, segments: [], flags: [flag] });
    // Find keys on both sides of the one-bucket edge by hashing alone, then check that evaluation places them.
    const hasher = new SaltedBucketer('edges');
    const keys: string[] = [];
    let zeros = 0;
    for (let i = 0; zeros < 2 && i < 2_000_000; i++) {
      const b = hasher.bucket(`k${i}`);
      if (b === 0) zeros++;
      if (b <= 1 || i % 1000 === 0) keys.push(`k${i}`);
    }
    expect(zeros).toBe(2);
    for (const key of keys) {
      const d = evaluate(env, 'edges', { key }, '');
      expect(d.variant).toBe(d.reason.bucket === 0 ? 'a' : 'c');
    }
  });
});
