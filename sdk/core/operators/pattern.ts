/**
 * Regular expressions for `matches`, run by an automaton (a Pike VM over a Thompson NFA) instead of a backtracking
 * engine, so time is O(input length × pattern size) for every pattern: nothing a flag author writes can hang the
 * evaluator, and nothing needs to be guessed about which patterns are "catastrophic".
 *
 * The syntax is the part of JavaScript's (no flags) that automata can run, with JavaScript's meaning: literals,
 * `.` (any code unit but a line terminator), classes `[a-z]`, `[^...]`, escapes `\d \D \w \W \s \S \b \B \t \n
 * \r \f \v \0 \xHH \uHHHH` and escaped punctuation (`\.`), groups `(...)`, `(?:...)`, `(?<name>...)`,
 * alternation `|`, anchors `^ $` (whole input; no multiline), quantifiers `* + ? {n} {n,} {n,m}` (lazy `?`
 * suffix accepted; it cannot change whether a match exists). Rejected: backreferences, lookarounds, Unicode
 * property escapes, `\c`, unescaped `{`/`}` outside a quantifier, and unknown letter escapes. A pattern matches if
 * it matches anywhere in the input (like `RegExp.prototype.test`), over UTF-16 code units.
 *
 * The parser compiles as it reads (no syntax tree): each atom's instructions are appended to the program, and a
 * quantifier cuts them off again and appends as many copies as it needs, their jumps moved along.
 */

/** Longest pattern accepted. */
export const MAX_PATTERN_LENGTH = 1024;
/** Largest compiled program (bounded repetitions are expanded, so `(a{1000}){1000}` is refused here). */
export const MAX_PROGRAM_SIZE = 10_000;
/** Largest count in a `{n,m}` quantifier. */
export const MAX_REPEAT = 1000;
/** Longest attribute string `matches` looks at: longer strings never match (bounds the O(n·m) work per call). */
export const MAX_MATCH_INPUT = 4096;

/**
 * Program instructions: SET consumes one code unit of its char set; SPLIT continues at both `x` and `y`; JMP at
 * `x`; ASSERT tests `x` (0 `^`, 1 `$`, 2 `\b`, 3 `\B`) without consuming; MATCH ends a match.
 */
export const OP_SET = 0;
export const OP_SPLIT = 1;
export const OP_JMP = 2;
export const OP_ASSERT = 3;
export const OP_MATCH = 4;

/**
 * What a SET instruction consumes: one code unit (a number), or a class of them. A class is decided by a native
 * `RegExp` of exactly one character class or class escape (`[a-z\d]`, `\w`, `.`), tested on a one-character string:
 * no quantifier, so nothing to backtrack, and JavaScript's own meaning by construction. The parser has checked the
 * class's syntax first (it refuses what JavaScript reads differently or what automata cannot run).
 */
export type CharSet = number | RegExp;

/** One instruction of a program: its op, operands `x` and `y`, and the char set of a SET. */
export type Instruction = [op: number, x: number, y: number, set: CharSet | null];

/**
 * Why a pattern is refused (`pattern-messages.ts` turns it into prose for flag authors; the SDK, which only compiles
 * what the server validated, leaves the prose out). The bundler inlines the members as numbers.
 */
export enum PatternProblem {
  Type,
  Length,
  Size,
  Quantifier,
  Count,
  Order,
  Repeat,
  Lookaround,
  Group,
  Unterminated,
  Brace,
  End,
  NotWordBoundaryInClass,
  Octal,
  Hex,
  Backreference,
  Escape,
  UnterminatedClass,
  ClassEscapeRange,
  RangeOrder,
  Unmatched,
  Invalid,
}

class PatternError extends Error {
  constructor(
    readonly problem: PatternProblem,
    readonly at: number,
  ) {
    super();
  }
}

function fail(problem: PatternProblem, at: number): never {
  throw new PatternError(problem, at);
}

export function inSet(set: CharSet, c: number): boolean {
  return typeof set === 'number' ? c === set : set.test(String.fromCharCode(c));
}

/** Parses `s` and compiles it to a program ending in MATCH. Throws `PatternError` on what the syntax refuses. */
function parse(s: string): Instruction[] {
  const prog: Instruction[] = [];
  let i = 0;

  const emit = (op: number, x = 0, y = 0, set: CharSet | null = null): number => {
    if (prog.length >= MAX_PROGRAM_SIZE) fail(PatternProblem.Size, i);
    return prog.push([op, x, y, set]) - 1;
  };

  /** Appends a copy of `frag`, a fragment first compiled at `from`; its jumps stay inside the copy. */
  const put = (frag: Instruction[], from: number): void => {
    const d = prog.length - from;
    for (const [op, x, y, set] of frag) {
      const j = op === OP_SPLIT || op === OP_JMP ? d : 0;
      emit(op, x + j, y + j, set);
    }
  };

  const alternation = (): void => {
    const start = prog.length;
    while (i < s.length && s[i] !== '|' && s[i] !== ')') {
      const from = prog.length;
      quantifier(from, atom());
    }
    if (s[i] !== '|') return;
    i++;
    // SPLIT first, rest; first: ...; JMP end; rest: ...; end:
    const first = prog.splice(start);
    const split = emit(OP_SPLIT, start + 1);
    put(first, start);
    const jump = emit(OP_JMP);
    prog[split]![2] = prog.length;
    alternation();
    prog[jump]![1] = prog.length;
  };

  /** Applies a quantifier, if one follows, to the atom compiled at `from` (an assertion cannot be repeated). */
  const quantifier = (from: number, assertion: boolean): void => {
    const c = s[i];
    let min = 0;
    let max = Infinity;
    if (c === '+') min = 1;
    else if (c === '?') max = 1;
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(s.slice(i, i + 24));
      if (m === null) fail(PatternProblem.Quantifier, i);
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) fail(PatternProblem.Count, i);
      if (max < min) fail(PatternProblem.Order, i);
      i += m[0].length - 1;
    } else if (c !== '*') return;
    if (assertion) fail(PatternProblem.Repeat, i);
    i++;
    if (s[i] === '?') i++; // lazy: same set of matches
    if (/[*+?{]/.test(s[i] ?? '')) fail(PatternProblem.Repeat, i);
    const body = prog.splice(from);
    for (let k = 0; k < min; k++) put(body, from);
    if (max === Infinity) {
      // loop: SPLIT body, end; body; JMP loop; end:
      const split = emit(OP_SPLIT, prog.length + 1);
      put(body, from);
      emit(OP_JMP, split);
      prog[split]![2] = prog.length;
    } else {
      for (let k = min; k < max; k++) {
        const split = emit(OP_SPLIT, prog.length + 1);
        put(body, from);
        prog[split]![2] = prog.length;
      }
    }
  };

  /** Compiles one atom; true when it is an assertion. */
  const atom = (): boolean => {
    const start = i;
    const c = s[i++]!;
    switch (c) {
      case '.':
        emit(OP_SET, 0, 0, /./);
        return false;
      case '^':
      case '$':
        emit(OP_ASSERT, c === '^' ? 0 : 1);
        return true;
      case '(': {
        if (s.startsWith('?:', i)) i += 2;
        else if (/^\?<?[=!]/.test(s.slice(i, i + 3))) fail(PatternProblem.Lookaround, start);
        else if (s[i] === '?') {
          const m = /^\?<([A-Za-z_$][\w$]*)>/.exec(s.slice(i, i + 80));
          if (m === null) fail(PatternProblem.Group, start);
          i += m[0].length;
        }
        alternation();
        if (s[i] !== ')') fail(PatternProblem.Unterminated, start);
        i++;
        return false;
      }
      case '[':
        emit(OP_SET, 0, 0, charClass(start));
        return false;
      case '\\':
        if (s[i] === 'b' || s[i] === 'B') {
          emit(OP_ASSERT, s[i++] === 'b' ? 2 : 3);
          return true;
        }
        emit(OP_SET, 0, 0, escaped(start));
        return false;
      case '*':
      case '+':
      case '?':
        return fail(PatternProblem.Repeat, start);
      case '{':
      case '}':
        return fail(PatternProblem.Brace, start);
      default:
        emit(OP_SET, 0, 0, c.charCodeAt(0));
        return false;
    }
  };

  /** After a backslash (at `start`), but for the assertions `\b` `\B`: in a class `\b` is a backspace. */
  const escaped = (start: number): CharSet => {
    const c = s[i++];
    if (c === undefined) fail(PatternProblem.End, start);
    if ('dDwWsS'.includes(c)) return new RegExp('\\' + c);
    let code = 9 + 'tnvfr'.indexOf(c);
    if (c === 'B') fail(PatternProblem.NotWordBoundaryInClass, start);
    if (c === 'b') code = 8;
    else if (c === '0') {
      if (/[0-9]/.test(s[i] ?? '')) fail(PatternProblem.Octal, start);
      code = 0;
    } else if (c === 'x' || c === 'u') {
      const n = c === 'x' ? 2 : 4;
      const hex = s.slice(i, i + n);
      if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length < n) fail(PatternProblem.Hex, start);
      i += n;
      code = parseInt(hex, 16);
    } else if (code < 9) {
      // Not a control escape: escaped punctuation stands for itself; letters and digits mean something else.
      if (/[1-9]/.test(c)) fail(PatternProblem.Backreference, start);
      if (/\w/.test(c)) fail(PatternProblem.Escape, start);
      code = c.charCodeAt(0);
    }
    return code;
  };

  /** One member of a class: a code unit, or a class escape (which cannot end a range). */
  const classAtom = (start: number): CharSet => {
    const c = s[i++];
    if (c === undefined) fail(PatternProblem.UnterminatedClass, start);
    return c === '\\' ? escaped(i - 1) : c.charCodeAt(0);
  };

  /** Checks a class's syntax; the class itself is then tested by a RegExp of its source. */
  const charClass = (start: number): CharSet => {
    if (s[i] === '^') i++;
    while (s[i] !== ']') {
      const a = classAtom(start);
      if (s[i] === '-' && s[i + 1] !== ']' && s[i + 1] !== undefined) {
        i++;
        const b = classAtom(start);
        if (typeof a !== 'number' || typeof b !== 'number') fail(PatternProblem.ClassEscapeRange, start);
        if (b < a) fail(PatternProblem.RangeOrder, start);
      }
    }
    i++;
    return new RegExp(s.slice(start, i));
  };

  alternation();
  if (i < s.length) fail(PatternProblem.Unmatched, i);
  prog.push([OP_MATCH, 0, 0, null]);
  return prog;
}

function isWordAt(s: string, i: number): boolean {
  return /\w/.test(s.charAt(i)); // '' outside the string: not a word character
}

/** What an accelerator sees of a compiled pattern: the program, whether matches start at 0 only, and the Pike VM. */
export interface ProgramView {
  readonly prog: readonly Instruction[];
  readonly anchored: boolean;
  pike(s: string): boolean;
}

/**
 * An accelerator for `matches`: builds a faster matcher for a program (same answers, still linear), or null to
 * keep the Pike VM. The lazy DFA in `pattern-dfa.ts` is one (`lazyDfa`); it is passed where patterns are compiled
 * (`compilePattern`, and `CompileOptions.patternEngine` for environments), never installed globally, so the
 * browser bundle, which does not import it, runs the Pike VM alone.
 */
export type PatternEngine = (program: ProgramView) => ((s: string) => boolean) | null;

/** A compiled pattern: `test` answers whether it matches anywhere in the input, in linear time. */
export class LinearPattern implements ProgramView {
  /** Every match starts at 0 (the program begins with `^`), so later start positions need not be tried. */
  readonly anchored: boolean;
  /** The engine's matcher (see `PatternEngine`), or null: Pike VM only. */
  private readonly _fast: ((s: string) => boolean) | null;

  constructor(
    readonly prog: readonly Instruction[],
    engine: PatternEngine | undefined,
  ) {
    this.anchored = prog[0]![0] === OP_ASSERT && prog[0]![1] === 0;
    this._fast = engine?.(this) ?? null;
  }

  /** Whether the pattern matches anywhere in `s` (false for strings longer than `MAX_MATCH_INPUT`). */
  test(s: string): boolean {
    if (s.length > MAX_MATCH_INPUT) return false;
    return this._fast !== null && s.length > 0 ? this._fast(s) : this.pike(s);
  }

  /** The Pike VM: all threads in lockstep over the input, O(length × program size), no cache. */
  pike(s: string): boolean {
    const { prog, anchored } = this;
    const n = s.length;
    // mark[pc] === pos + 1: pc is already in the thread list being built for position pos.
    const mark = new Int32Array(prog.length);
    const stack: number[] = [];
    /** Adds the thread at `pc` and all it reaches without consuming at `pos` to `list`; true if one matches. */
    const add = (list: number[], pc: number, pos: number): boolean => {
      stack.push(pc);
      while (stack.length > 0) {
        pc = stack.pop()!;
        if (mark[pc] === pos + 1) continue;
        mark[pc] = pos + 1;
        const [o, x, y] = prog[pc]!;
        if (o === OP_MATCH) return true;
        if (o === OP_SET) list.push(pc);
        else if (o === OP_JMP) stack.push(x);
        else if (o === OP_SPLIT) stack.push(y, x);
        else if (x < 2 ? pos === (x === 0 ? 0 : n) : (isWordAt(s, pos - 1) !== isWordAt(s, pos)) === (x === 2)) stack.push(pc + 1);
      }
      return false;
    };
    let list: number[] = [];
    for (let pos = 0; ; pos++) {
      if ((pos === 0 || !anchored) && add(list, 0, pos)) return true;
      if (pos === n || (anchored && list.length === 0)) return false;
      const c = s.charCodeAt(pos);
      const next: number[] = [];
      for (const pc of list) if (inSet(prog[pc]![3]!, c) && add(next, pc + 1, pos + 1)) return true;
      list = next;
    }
  }
}

/** A compiled pattern, or why and where (an index into the source) the pattern was refused. */
export type PatternResult = { ok: true; pattern: LinearPattern } | { ok: false; problem: PatternProblem; at: number };

/** Parses and compiles a pattern, accelerated by `engine` if given (default: the Pike VM alone); never throws. */
export function compilePattern(source: string, engine?: PatternEngine): PatternResult {
  try {
    if (typeof source !== 'string') fail(PatternProblem.Type, 0);
    if (source.length > MAX_PATTERN_LENGTH) fail(PatternProblem.Length, MAX_PATTERN_LENGTH);
    return { ok: true, pattern: new LinearPattern(parse(source), engine) };
  } catch (e) {
    return e instanceof PatternError ? { ok: false, problem: e.problem, at: e.at } : { ok: false, problem: PatternProblem.Invalid, at: 0 };
  }
}
