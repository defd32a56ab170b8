/**
 * What flag authors are told about a pattern `matches` refuses (the server's validator reports it). Kept apart from
 * the engine in `pattern.ts`, which says only which rule a pattern broke and where: the SDK compiles patterns the
 * server has already validated, so the browser bundle carries none of this prose.
 */
import { compilePattern, MAX_PATTERN_LENGTH, MAX_PROGRAM_SIZE, MAX_REPEAT, type PatternProblem } from './pattern.js';

/** The explanation of `problem` found at index `at` of `source`. */
export function explainPatternProblem(source: string, problem: PatternProblem, at: number): string {
  // `at` is where the offending construct starts: a brace, or the backslash of an escape.
  const c = source[problem === 'brace' ? at : at + 1];
  switch (problem) {
    case 'type':
      return 'must be a string';
    case 'length':
      return `longer than ${MAX_PATTERN_LENGTH} characters`;
    case 'size':
      return `pattern compiles to more than ${MAX_PROGRAM_SIZE} states`;
    case 'quantifier':
      return `"{" at ${at} is not a quantifier (escape a literal brace as \\{)`;
    case 'count':
      return `repetition count above ${MAX_REPEAT}`;
    case 'order':
      return `numbers out of order in quantifier at ${at}`;
    case 'repeat':
      return `nothing to repeat at ${at}`;
    case 'lookaround':
      return `lookarounds are not supported (at ${at})`;
    case 'group':
      return `invalid group at ${at}`;
    case 'unterminated':
      return `unterminated group at ${at}`;
    case 'brace':
      return `unescaped "${c}" at ${at} (escape a literal brace as \\${c})`;
    case 'end':
      return 'pattern ends with "\\"';
    case 'B':
      return `"\\B" in a class at ${at}`;
    case 'octal':
      return `octal escapes are not supported (at ${at})`;
    case 'hex':
      return `"\\${c}" needs ${c === 'x' ? 'two' : 'four'} hex digits (at ${at})`;
    case 'backreference':
      return `backreferences are not supported (at ${at})`;
    case 'escape':
      return `unsupported escape "\\${c}" at ${at}`;
    case 'class':
      return `unterminated character class at ${at}`;
    case 'range':
      return `invalid range with a class escape at ${at}`;
    case 'classorder':
      return `range out of order in character class at ${at}`;
    case 'unmatched':
      return `unmatched ")" at ${at}`;
    case 'invalid':
      return 'invalid regular expression';
  }
}

/** Why `source` is not an accepted pattern, in words, or undefined when it is one. */
export function patternProblem(source: string): string | undefined {
  const r = compilePattern(source);
  return r.ok ? undefined : explainPatternProblem(source, r.problem, r.at);
}
