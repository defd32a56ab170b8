import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lazyDfa } from '../../sdk/core/operators/pattern-dfa.js';
import { compilePattern as compilePikeOnly, MAX_MATCH_INPUT } from '../../sdk/core/operators/pattern.js';
import { patternProblem } from '../../sdk/core/operators/pattern-messages.js';

/** Compiles with the lazy DFA, as the server and the SDK on Node do. */
const compilePattern = (source: string) => compilePikeOnly(source, lazyDfa);

function compiled(source: string) {
  const r = compilePattern(source);
  if (!r.ok) throw new Error(`${source}: ${r.problem} at ${r.at}`);
  return r.pattern;
}

/** Random patterns from the accepted syntax, over a small alphabet so that matches are frequent. */
const patternArb: fc.Arbitrary<string> = fc.letrec<{ alt: string; seq: string; atom: string; quantified: string }>((tie) => ({
  atom: fc.oneof(
    { maxDepth: 1, depthIdentifier: 'group' },
    fc.constantFrom('a', 'b', '.', '[ab]', '[^a]', '\\d', '\\w', '\\s', '\\b', '\\B', '^', '$', '\\.', '[a-c]', '1', ' '),
    tie('alt').map((a) => `(${a})`),
    tie('alt').map((a) => `(?:${a})`),
  ),
  quantified: fc
    .tuple(tie('atom'), fc.constantFrom('', '', '*', '+', '?', '{2}', '{0,2}', '{1,}', '*?', '+?'))
    .map(([a, q]) => (/^(\^|\$|\\b|\\B)$/.test(a) ? a : a + q)),
  seq: fc.array(tie('quantified'), { minLength: 0, maxLength: 3 }).map((xs) => xs.join('')),
  alt: fc.array(tie('seq'), { minLength: 1, maxLength: 2 }).map((xs) => xs.join('|')),
})).alt;

const inputArb = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '1', ' ', '.', '\n', 'é'), maxLength: 10 });

/** Any string over the characters the syntax gives a meaning to: most are not patterns the engine accepts. */
const anySourceArb = fc
  .array(fc.constantFrom(...'abzA_019.-, é[]^$()|*+?{}\\dDwWsSbBxuntv0<>=!:'.split(''), 'x41', 'u00e9', '\\x2', '[^', 'a-'), { maxLength: 12 })
  .map((xs) => xs.join(''));
const wideInputArb = fc.string({ unit: fc.constantFrom(...'abzA_019.-, é\n\r\t\v\b\u00a0\u2028\ufeff{}[]'.split('')), maxLength: 10 });

describe('matches runs on a linear-time automaton', () => {
  // Shallow patterns and short inputs: the backtracking RegExp used as the reference takes seconds on deeper ones.
  it('agrees with JavaScript RegExp on every pattern of the accepted syntax', () => {
    fc.assert(
      fc.property(patternArb, fc.array(inputArb, { minLength: 1, maxLength: 8 }), (source, inputs) => {
        const native = new RegExp(source);
        const mine = compiled(source);
        for (const s of inputs) expect(mine.test(s), `/${source}/ on ${JSON.stringify(s)}`).toBe(native.test(s));
      }),
      { numRuns: 1500 },
    );
  });

  it('accepts only what JavaScript accepts, and answers as RegExp does, on the DFA and on the Pike VM alone', () => {
    let accepted = 0;
    fc.assert(
      fc.property(anySourceArb, fc.array(wideInputArb, { minLength: 1, maxLength: 6 }), (source, inputs) => {
        const r = compilePattern(source);
        if (!r.ok) return;
        accepted++;
        const native = new RegExp(source); // throws (failing the property) if JavaScript refuses what the engine took
        for (const s of inputs) {
          expect(r.pattern.test(s), `/${source}/ on ${JSON.stringify(s)}`).toBe(native.test(s));
          expect(r.pattern.pike(s), `Pike VM: /${source}/ on ${JSON.stringify(s)}`).toBe(native.test(s));
        }
      }),
      { numRuns: 4000 },
    );
    expect(accepted).toBeGreaterThan(1000);
  });

  it('agrees with RegExp on the Pike VM alone, as in the browser bundle that leaves the lazy DFA out', () => {
    fc.assert(
      fc.property(patternArb, fc.array(inputArb, { minLength: 1, maxLength: 8 }), (source, inputs) => {
        const r = compilePikeOnly(source);
        if (!r.ok) throw new Error(`${source}: ${r.problem} at ${r.at}`);
        for (const s of inputs) expect(r.pattern.test(s), `/${source}/ on ${JSON.stringify(s)}`).toBe(new RegExp(source).test(s));
      }),
      { numRuns: 500 },
    );
    const slow = compilePikeOnly('^(a+)+$');
    expect(slow.ok && slow.pattern.test('a'.repeat(4000) + 'b')).toBe(false);
  });

  it.each([
    ['^(a+)+$', 'a'.repeat(4000) + 'b', false],
    ['(a|a)*b', 'a'.repeat(4000), false],
    ['(a*)*c', 'a'.repeat(4000), false],
    ['^(\\w+\\s?)*$', 'word '.repeat(800) + '!', false],
    ['(.*a){20}', 'a'.repeat(4000), true],
  ])('answers catastrophic pattern /%s/ quickly', (source, input, expected) => {
    const p = compiled(source);
    const started = performance.now();
    const result = p.test(input);
    const elapsed = performance.now() - started;
    expect(result).toBe(expected);
    expect(elapsed).toBeLessThan(500);
  });

  it('agrees with RegExp when the lazy DFA outgrows its cache and the Pike VM takes over', () => {
    // "an a 13 characters from the end" needs 2^13 DFA states, more than the cache holds.
    const source = '(a|b)*a(a|b){12}$';
    const mine = compiled(source);
    const native = new RegExp(source);
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'b'), minLength: 10, maxLength: 40 }), (s) => {
        expect(mine.test(s)).toBe(native.test(s));
      }),
      { numRuns: 3000 },
    );
  });

  it('never matches an input longer than the bound', () => {
    expect(compiled('a').test('a'.repeat(MAX_MATCH_INPUT))).toBe(true);
    expect(compiled('a').test('a'.repeat(MAX_MATCH_INPUT + 1))).toBe(false);
  });

  it.each([
    ['(a)\\1', 'backreferences'],
    ['(?=a)', 'lookarounds'],
    ['(?<!a)b', 'lookarounds'],
    ['a**', 'nothing to repeat'],
    ['*a', 'nothing to repeat'],
    ['^*', 'nothing to repeat'],
    ['(a', 'unterminated group'],
    ['a)', 'unmatched'],
    ['[a', 'unterminated character class'],
    ['[z-a]', 'out of order'],
    ['a{3,2}', 'out of order'],
    ['a{2000}', 'repetition count'],
    ['((a{1000}){1000})', 'more than'],
    ['\\p{L}', 'unsupported escape'],
    ['a{', 'not a quantifier'],
    ['\\', 'ends with'],
    ['\\x4', 'hex digits'],
  ])('rejects /%s/ (%s)', (source, reason) => {
    expect(compilePattern(source).ok).toBe(false);
    expect(patternProblem(source)).toContain(reason);
  });

  it.each([
    ['^[a-z0-9._%+-]+@acme\\.com$', 'jo.doe+x@acme.com', true],
    ['^[a-z0-9._%+-]+@acme\\.com$', 'jo@acme.com.evil', false],
    ['\\bpro\\b', 'the pro plan', true],
    ['\\bpro\\b', 'professional', false],
    ['^\\u00e9t\\xe9$', 'été', true],
    ['[^]', '\n', true],
    ['.', '\n', false],
    ['^(?<major>\\d+)\\.\\d+$', '12.3', true],
    ['[\\d-]{3}', '1-2', true],
  ])('/%s/ on %j is %s', (source, input, expected) => {
    expect(compiled(source).test(input)).toBe(expected);
    expect(new RegExp(source).test(input)).toBe(expected);
  });
});
