import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareSemver, parseIsoDate, parseSemver, toEpochMillis } from '../../sdk/core/index.js';

describe('semantic versions', () => {
  // The precedence example of semver.org §11, in ascending order.
  const ordered = [
    '1.0.0-alpha',
    '1.0.0-alpha.1',
    '1.0.0-alpha.beta',
    '1.0.0-beta',
    '1.0.0-beta.2',
    '1.0.0-beta.11',
    '1.0.0-rc.1',
    '1.0.0',
    '1.0.1',
    '1.1.0',
    '2.0.0',
    '10.0.0',
  ];

  it('orders the semver.org §11 example exactly', () => {
    const parsed = ordered.map((s) => parseSemver(s)!);
    for (let i = 0; i < parsed.length; i++) {
      for (let j = 0; j < parsed.length; j++) {
        expect(Math.sign(compareSemver(parsed[i]!, parsed[j]!)), `${ordered[i]} vs ${ordered[j]}`).toBe(Math.sign(i - j));
      }
    }
  });

  it('ignores build metadata', () => {
    expect(compareSemver(parseSemver('1.2.3+a')!, parseSemver('1.2.3+b.7')!)).toBe(0);
  });

  it.each(['1.2', '1', 'v1.2.3', '01.2.3', '1.02.3', '1.2.3-', '1.2.3-01', '1.2.3+', '1.2.3 ', '', '1.2.3-a..b', '99999999999999999999.0.0'])(
    'rejects %j',
    (s) => {
      expect(parseSemver(s)).toBeUndefined();
    },
  );

  it('is a total order consistent with numeric comparison of the core', () => {
    const version = fc.tuple(fc.nat(20), fc.nat(20), fc.nat(20)).map(([a, b, c]) => `${a}.${b}.${c}`);
    fc.assert(
      fc.property(version, version, (x, y) => {
        const [a, b] = [parseSemver(x)!, parseSemver(y)!];
        const key = (v: typeof a) => v.major * 1e6 + v.minor * 1e3 + v.patch;
        expect(Math.sign(compareSemver(a, b))).toBe(Math.sign(key(a) - key(b)));
        expect(compareSemver(a, b)).toBe(-compareSemver(b, a) || 0);
      }),
    );
  });
});

describe('dates', () => {
  it('parses what toISOString writes to the same instant Date does', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }), (d) => {
        expect(parseIsoDate(d.toISOString())).toBe(d.getTime());
      }),
    );
  });

  it.each([
    ['2024-01-01', Date.UTC(2024, 0, 1)],
    ['2024-02-29T12:00:00Z', Date.UTC(2024, 1, 29, 12)],
    ['2024-01-01T01:00:00+01:00', Date.UTC(2024, 0, 1)],
    ['2024-01-01T00:00:00-0130', Date.UTC(2024, 0, 1, 1, 30)],
    ['2024-01-01 10:30Z', Date.UTC(2024, 0, 1, 10, 30)],
    ['2024-01-01T00:00:00.123456789Z', Date.UTC(2024, 0, 1) + 123],
    ['0099-06-01', new Date('0099-06-01T00:00:00Z').getTime()], // not 1999, as Date.UTC(99, 5, 1) would say
  ])('parses %s', (s, ms) => {
    expect(parseIsoDate(s)).toBe(ms);
  });

  it.each([
    '2023-02-29',
    '2024-13-01',
    '2024-00-10',
    '2024-01-32',
    '2024-01-01T24:00:00Z',
    '2024-01-01T10:00:00',
    '2024-01-01T10:60Z',
    'Jan 1 2024',
    '20240101',
    '2024-1-1',
  ])('rejects %s', (s) => {
    expect(parseIsoDate(s)).toBeUndefined();
  });

  it('takes finite numbers as epoch milliseconds and nothing else', () => {
    expect(toEpochMillis(0)).toBe(0);
    expect(toEpochMillis(-1.5)).toBe(-1.5);
    expect(toEpochMillis(Infinity)).toBeUndefined();
    expect(toEpochMillis(true)).toBeUndefined();
  });
});
