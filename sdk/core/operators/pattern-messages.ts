/**
 * What flag authors are told about a pattern `matches` refuses (the server's validator reports it). Kept apart from
 * the engine in `pattern.ts`, which says only which rule a pattern broke and where: the SDK compiles patterns the
 * server has already validated, so the browser bundle carries none of this prose.
 */
import { compilePattern, MAX_PATTERN_LENGTH, MAX_PROGRAM_SIZE, MAX_REPEAT, PatternProblem } from './pattern.js';

/** The explanation of `problem` found at index `at` of `source`. */
export function explainPatternProblem(source: string, problem: PatternProblem, at: number): string {
  // `at` is where the offending construct starts: a brace, or the backslash of an escape.
  const c = source[problem === PatternProblem.Brace ? at : at + 1];
  switch (problem) {
    case PatternProblem.Type:
      return 'must be a string';
    case PatternProblem.Length:
      return `longer than ${MAX_PATTERN_LENGTH} characters`;
    case PatternProblem.Size:
      return `pattern compiles to more than ${MAX_PROGRAM_SIZE} states`;
    case PatternProblem.Quantifier:
      return `"{" at ${at} is not a quantifier (escape a literal brace as \\{)`;
    case PatternProblem.Count:
      return `repetition count above ${MAX_REPEAT}`;
    case PatternProblem.Order:
      return `numbers out of order in quantifier at ${at}`;
    case PatternProblem.Repeat:
      return `nothing to repeat at ${at}`;
    case PatternProblem.Lookaround:
      return `lookarounds are not supported (at ${at})`;
    case PatternProblem.Group:
      return `invalid group at ${at}`;
    case PatternProblem.Unterminated:
      return `unterminated group at ${at}`;
    case PatternProblem.Brace:
      return `unescaped "${c}" at ${at} (escape a literal brace as \\${c})`;
    case PatternProblem.End:
      return 'pattern ends with "\\"';
    case PatternProblem.NotWordBoundaryInClass:
      return `"\\B" in a class at ${at}`;
    case PatternProblem.Octal:
      return `octal escapes are not supported (at ${at})`;
    case PatternProblem.Hex:
      return `"\\${c}" needs ${c === 'x' ? 'two' : 'four'} hex digits (at ${at})`;
    case PatternProblem.Backreference:
      return `backreferences are not supported (at ${at})`;
    case PatternProblem.Escape:
      return `unsupported escape "\\${c}" at ${at}`;
    case PatternProblem.UnterminatedClass:
      return `unterminated character class at ${at}`;
    case PatternProblem.ClassEscapeRange:
      return `invalid range with a class escape at ${at}`;
    case PatternProblem.RangeOrder:
      return `range out of order in character class at ${at}`;
    case PatternProblem.Unmatched:
      return `unmatched ")" at ${at}`;
    case PatternProblem.Invalid:
      return 'invalid regular expression';
  }
}

/**
 * Largest program a flag author may save. Matching costs up to one step per instruction per input character (the
 * Pike VM, which runs patterns with `\b` or `\B` and any pattern whose lazy DFA outgrows its cache), so this bounds
 * the cost per byte of the attribute strings an SDK key sends: `\b[a-z0-9._%+-]{1,64}@acme\.com\b` is 139
 * instructions, `\b(a|b|.){0,1000}\bQ` (about 0.1 ms per character) 8,004. The engine itself still compiles up to
 * `MAX_PROGRAM_SIZE`, so flags stored before this limit keep working in SDKs.
 */
export const MAX_VALIDATED_PROGRAM_SIZE = 512;

/** Why `source` is not an accepted pattern, in words, or undefined when it is one. */
export function patternProblem(source: string): string | undefined {
  const r = compilePattern(source);
  if (!r.ok) return explainPatternProblem(source, r.problem, r.at);
  const size = r.pattern.prog.length;
  if (size > MAX_VALIDATED_PROGRAM_SIZE) {
    return `pattern compiles to ${size} instructions, more than ${MAX_VALIDATED_PROGRAM_SIZE}: matching would cost too much per input character (use smaller repetition counts than {0,${MAX_REPEAT}})`;
  }
  return undefined;
}
