/**
 * `matches`: a regular expression that cannot hang the evaluator. (Interim: native RegExp with backreferences and
 * lookarounds rejected and the input length bounded; replaced by a linear-time automaton, see pattern.ts.)
 */

/** Longest attribute string `matches` looks at; longer strings do not match. */
export const MAX_MATCH_INPUT = 4096;
/** Longest pattern accepted. */
export const MAX_PATTERN_LENGTH = 1024;

export type PatternResult = { ok: true; test: (s: string) => boolean } | { ok: false; reason: string };

export function compilePattern(source: string): PatternResult {
  if (source.length > MAX_PATTERN_LENGTH) return { ok: false, reason: `longer than ${MAX_PATTERN_LENGTH} characters` };
  if (/\\[1-9]|\\k<|\(\?<?[=!]/.test(source)) return { ok: false, reason: 'backreferences and lookarounds are not supported' };
  let re: RegExp;
  try {
    re = new RegExp(source, 'u');
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : 'invalid regular expression' };
  }
  return { ok: true, test: (s) => s.length <= MAX_MATCH_INPUT && re.test(s) };
}
