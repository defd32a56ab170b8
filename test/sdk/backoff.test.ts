import { describe, expect, it } from 'vitest';
import { Backoff } from '../../sdk/backoff.js';

describe('reconnect backoff', () => {
  it('grows exponentially up to the cap, with full jitter below the ceiling', () => {
    const top = new Backoff({ initialMs: 100, maxMs: 1_000 }, () => 0.999999);
    expect(Array.from({ length: 6 }, () => top.next())).toEqual([99, 199, 399, 799, 999, 999]);
    const bottom = new Backoff({ initialMs: 100, maxMs: 1_000 }, () => 0);
    expect(Array.from({ length: 3 }, () => bottom.next())).toEqual([0, 0, 0]);
  });

  it('spreads delays uniformly over the window (full jitter)', () => {
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const delays = Array.from({ length: 10_000 }, () => new Backoff({ initialMs: 1_000 }, random).next());
    const quartiles = [0, 0, 0, 0];
    for (const d of delays) quartiles[Math.floor(d / 250)]!++;
    for (const q of quartiles) expect(q).toBeGreaterThan(2_200);
  });

  it('resets only after a connection that stayed up long enough', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 10_000, stableAfterMs: 1_000 }, () => 0.5);
    b.next();
    b.next();
    b.next();
    expect(b.attempts).toBe(3);
    // Accepted and dropped at once (a server in trouble): keep backing off.
    b.connected(0);
    b.disconnected(10);
    expect(b.attempts).toBe(3);
    expect(b.next()).toBe(400);
    // Stable for a while: start over.
    b.connected(100);
    b.disconnected(1_200);
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(50);
  });
});
