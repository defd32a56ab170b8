import { describe, expect, it } from 'vitest';
import { Backoff } from '../../sdk/backoff.js';

/** A seeded linear congruential generator: the same "random" sequence on every run. */
function seeded(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

/** Where N clients that all lost the server at t = 0 get back in, if it is back at `downMs` (attempts before fail). */
function arrivals(n: number, downMs: number, random: () => number, options = {}): { times: number[]; attempts: number } {
  const times: number[] = [];
  let attempts = 0;
  for (let i = 0; i < n; i++) {
    const b = new Backoff(options, random);
    let t = 0;
    do {
      t += b.next();
      attempts++;
    } while (t < downMs);
    times.push(t - downMs);
  }
  return { times: times.sort((a, b) => a - b), attempts };
}

function busiest(sorted: number[], widthMs: number): number {
  let most = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! > widthMs) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

describe('reconnect backoff', () => {
  it('the first delay uses the whole first window, later ones the upper half of windows growing by 4/3, up to the cap', () => {
    const top = new Backoff({ initialMs: 900, maxMs: 2_000 }, () => 0.999999);
    expect(Array.from({ length: 6 }, () => top.next())).toEqual([899, 1199, 1599, 1999, 1999, 1999]);
    const bottom = new Backoff({ initialMs: 900, maxMs: 2_000 }, () => 0);
    // Full jitter first (anywhere from 0), then never less than half the window.
    expect(Array.from({ length: 6 }, () => bottom.next())).toEqual([0, 600, 800, 1000, 1000, 1000]);
  });

  it('defaults: the first attempt within 2 s, capped at 30 s', () => {
    const top = new Backoff({}, () => 0.999999);
    const delays = Array.from({ length: 14 }, () => top.next());
    expect(delays[0]).toBe(1_999);
    expect(delays[1]).toBe(2_666);
    expect(delays.at(-1)).toBe(29_999);
    expect(Math.max(...delays)).toBeLessThan(30_000);
  });

  it('spreads the first delays uniformly over the window (full jitter)', () => {
    const random = seeded(42);
    const delays = Array.from({ length: 10_000 }, () => new Backoff({ initialMs: 1_000 }, random).next());
    const quartiles = [0, 0, 0, 0];
    for (const d of delays) quartiles[Math.floor(d / 250)]!++;
    for (const q of quartiles) expect(q).toBeGreaterThan(2_200);
  });

  it("the server's goodbye window replaces the first window only, never a window that grew after failures", () => {
    const b = new Backoff({ initialMs: 2_000 }, () => 0.999999);
    expect(b.next(400)).toBe(399);
    // Already failing: the hint cannot make the client come back sooner than its own backoff.
    expect(b.next(400)).toBe(2_666);
    // Nor later than the cap.
    expect(new Backoff({ initialMs: 2_000, maxMs: 5_000 }, () => 0.999999).next(60_000)).toBe(4_999);
  });

  it('resets only after a connection that stayed up long enough', () => {
    const b = new Backoff({ initialMs: 300, maxMs: 10_000, stableAfterMs: 1_000 }, () => 0.5);
    b.next();
    b.next();
    b.next();
    expect(b.attempts).toBe(3);
    // Accepted and dropped at once (a server in trouble): keep backing off.
    b.connected(0);
    b.disconnected(10);
    expect(b.attempts).toBe(3);
    expect(b.next()).toBe(533); // 3/4 of the fourth window, 300 × (4/3)^3 ≈ 711
    // Stable for a while: start over.
    b.connected(100);
    b.disconnected(1_200);
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(150);
  });

  it('a crowd that lost a healthy server comes back within a few seconds of it returning, spread out', () => {
    const random = seeded(7);
    for (const downMs of [0, 1_000, 2_000, 3_000, 5_000]) {
      const { times } = arrivals(1_000, downMs, random);
      // Not over a quarter of a minute: every client is back within 5 s of the server returning.
      expect(times.at(-1)).toBeLessThan(5_000);
      expect(times[989]).toBeLessThan(4_800);
      // Not all at once: no 100 ms holds more than a tenth of them, and the middle 80% spans over a second.
      expect(busiest(times, 100)).toBeLessThan(100);
      expect(times[900]! - times[100]!).toBeGreaterThan(1_400);
    }
  });

  it('a server that refuses or drops every connection at once is not hammered: no more attempts than the old policy', () => {
    // The old policy (full jitter, first window 500 ms, doubling to 30 s) made about 8.6 attempts per client in the
    // first minute and about 19 in five minutes; the new one stays at or below that.
    const random = seeded(3);
    const attemptsWithin = (ms: number) => {
      let total = 0;
      for (let i = 0; i < 1_000; i++) {
        const b = new Backoff({}, random);
        for (let t = b.next(); t < ms; t += b.next()) {
          total++;
          b.connected(t);
          b.disconnected(t + 5); // accepted, then dropped at once: never stable
        }
      }
      return total / 1_000;
    };
    expect(attemptsWithin(60_000)).toBeLessThan(9.5);
    expect(attemptsWithin(300_000)).toBeLessThan(21);
    // And never faster than half a window once failing: after ten failures, no delay under 7 s.
    const b = new Backoff({}, () => 0);
    for (let i = 0; i < 10; i++) b.next();
    expect(b.next()).toBeGreaterThanOrEqual(7_000);
  });
});
