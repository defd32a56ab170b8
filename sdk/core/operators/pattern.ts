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
 */

/** Longest pattern accepted. */
export const MAX_PATTERN_LENGTH = 1024;
/** Largest compiled program (bounded repetitions are expanded, so `(a{1000}){1000}` is refused here). */
export const MAX_PROGRAM_SIZE = 10_000;
/** Largest count in a `{n,m}` quantifier. */
export const MAX_REPEAT = 1000;
/** Longest attribute string `matches` looks at: longer strings never match (bounds the O(n·m) work per call). */
export const MAX_MATCH_INPUT = 4096;

/** A set of UTF-16 code units: sorted inclusive ranges, possibly negated. */
interface CharSet {
  ranges: number[]; // lo0, hi0, lo1, hi1, ...
  negated: boolean;
}

type Node =
  | { t: 'set'; set: CharSet }
  | { t: 'any' }
  | { t: 'cat'; items: Node[] }
  | { t: 'alt'; items: Node[] }
  | { t: 'rep'; node: Node; min: number; max: number }
  | { t: 'assert'; kind: Assertion };

type Assertion = 'bol' | 'eol' | 'wordb' | 'nwordb';

class PatternError extends Error {}

const DIGIT: number[] = [0x30, 0x39];
const WORD: number[] = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a];
const SPACE: number[] = [
  0x09, 0x0d, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f,
  0x3000, 0x3000, 0xfeff, 0xfeff,
];

function negateRanges(r: number[]): number[] {
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < r.length; i += 2) {
    if (r[i]! > next) out.push(next, r[i]! - 1);
    next = r[i + 1]! + 1;
  }
  if (next <= 0xffff) out.push(next, 0xffff);
  return out;
}

function normalize(r: number[]): number[] {
  const pairs: [number, number][] = [];
  for (let i = 0; i < r.length; i += 2) pairs.push([r[i]!, r[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of pairs) {
    const n = out.length;
    if (n > 0 && lo <= out[n - 1]! + 1) out[n - 1] = Math.max(out[n - 1]!, hi);
    else out.push(lo, hi);
  }
  return out;
}

class Parser {
  private _i = 0;
  constructor(private readonly _s: string) {}

  parse(): Node {
    const n = this._alternation();
    if (this._i < this._s.length) throw new PatternError(`unmatched ")" at ${this._i}`);
    return n;
  }

  private _peek(): string | undefined {
    return this._s[this._i];
  }

  private _alternation(): Node {
    const items = [this._sequence()];
    while (this._peek() === '|') {
      this._i++;
      items.push(this._sequence());
    }
    return items.length === 1 ? items[0]! : { t: 'alt', items };
  }

  private _sequence(): Node {
    const items: Node[] = [];
    for (;;) {
      const c = this._peek();
      if (c === undefined || c === '|' || c === ')') break;
      const atom = this._atom();
      items.push(this._quantified(atom));
    }
    return { t: 'cat', items };
  }

  private _quantified(atom: Node): Node {
    const c = this._peek();
    let min: number;
    let max: number;
    if (c === '*') [min, max] = [0, Infinity];
    else if (c === '+') [min, max] = [1, Infinity];
    else if (c === '?') [min, max] = [0, 1];
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this._s.slice(this._i, this._i + 24));
      if (m === null) throw new PatternError(`"{" at ${this._i} is not a quantifier (escape a literal brace as \\{)`);
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) throw new PatternError(`repetition count above ${MAX_REPEAT}`);
      if (max < min) throw new PatternError(`numbers out of order in quantifier at ${this._i}`);
      this._i += m[0].length - 1;
    } else return atom;
    if (atom.t === 'assert') throw new PatternError(`nothing to repeat at ${this._i}`);
    this._i++;
    if (this._peek() === '?') this._i++; // lazy: same set of matches
    if (isQuantifierStart(this._peek())) throw new PatternError(`nothing to repeat at ${this._i}`);
    return { t: 'rep', node: atom, min, max };
  }

  private _atom(): Node {
    const start = this._i;
    const c = this._s[this._i++]!;
    switch (c) {
      case '.':
        return { t: 'any' };
      case '^':
        return { t: 'assert', kind: 'bol' };
      case '$':
        return { t: 'assert', kind: 'eol' };
      case '(': {
        if (this._s.startsWith('?:', this._i)) this._i += 2;
        else if (this._s.startsWith('?=', this._i) || this._s.startsWith('?!', this._i) || this._s.startsWith('?<=', this._i) || this._s.startsWith('?<!', this._i)) {
          throw new PatternError(`lookarounds are not supported (at ${start})`);
        } else if (this._s[this._i] === '?') {
          const m = /^\?<([A-Za-z_$][\w$]*)>/.exec(this._s.slice(this._i, this._i + 80));
          if (m === null) throw new PatternError(`invalid group at ${start}`);
          this._i += m[0].length;
        }
        const inner = this._alternation();
        if (this._peek() !== ')') throw new PatternError(`unterminated group at ${start}`);
        this._i++;
        return inner;
      }
      case '[':
        return { t: 'set', set: this._charClass(start) };
      case '\\':
        return this._escape(false, start);
      case '*':
      case '+':
      case '?':
        throw new PatternError(`nothing to repeat at ${start}`);
      case '{':
      case '}':
        throw new PatternError(`unescaped "${c}" at ${start} (escape a literal brace as \\${c})`);
      default:
        return { t: 'set', set: { ranges: [c.charCodeAt(0), c.charCodeAt(0)], negated: false } };
    }
  }

  /** After a backslash. In a class, `\b` is backspace and assertions are not allowed. */
  private _escape(inClass: boolean, start: number): Node {
    const c = this._s[this._i++];
    if (c === undefined) throw new PatternError('pattern ends with "\\"');
    const single = (code: number): Node => ({ t: 'set', set: { ranges: [code, code], negated: false } });
    switch (c) {
      case 'd':
        return { t: 'set', set: { ranges: DIGIT, negated: false } };
      case 'D':
        return { t: 'set', set: { ranges: DIGIT, negated: true } };
      case 'w':
        return { t: 'set', set: { ranges: WORD, negated: false } };
      case 'W':
        return { t: 'set', set: { ranges: WORD, negated: true } };
      case 's':
        return { t: 'set', set: { ranges: SPACE, negated: false } };
      case 'S':
        return { t: 'set', set: { ranges: SPACE, negated: true } };
      case 'b':
        return inClass ? single(8) : { t: 'assert', kind: 'wordb' };
      case 'B':
        if (inClass) throw new PatternError(`"\\B" in a class at ${start}`);
        return { t: 'assert', kind: 'nwordb' };
      case 't':
        return single(9);
      case 'n':
        return single(10);
      case 'v':
        return single(11);
      case 'f':
        return single(12);
      case 'r':
        return single(13);
      case '0':
        if (/[0-9]/.test(this._peek() ?? '')) throw new PatternError(`octal escapes are not supported (at ${start})`);
        return single(0);
      case 'x': {
        const m = /^[0-9a-fA-F]{2}/.exec(this._s.slice(this._i, this._i + 2));
        if (m === null) throw new PatternError(`"\\x" needs two hex digits (at ${start})`);
        this._i += 2;
        return single(parseInt(m[0], 16));
      }
      case 'u': {
        const m = /^[0-9a-fA-F]{4}/.exec(this._s.slice(this._i, this._i + 4));
        if (m === null) throw new PatternError(`"\\u" needs four hex digits (at ${start})`);
        this._i += 4;
        return single(parseInt(m[0], 16));
      }
      default:
        if (/[1-9]/.test(c)) throw new PatternError(`backreferences are not supported (at ${start})`);
        if (/[A-Za-z0-9_]/.test(c)) throw new PatternError(`unsupported escape "\\${c}" at ${start}`);
        return single(c.charCodeAt(0));
    }
  }

  private _classAtom(start: number): number | CharSet {
    const c = this._s[this._i];
    if (c === undefined) throw new PatternError(`unterminated character class at ${start}`);
    if (c !== '\\') {
      this._i++;
      return c.charCodeAt(0);
    }
    this._i++;
    const n = this._escape(true, this._i - 1);
    if (n.t !== 'set') throw new PatternError(`invalid escape in class at ${this._i}`);
    const r = n.set.ranges;
    if (!n.set.negated && r.length === 2 && r[0] === r[1]) return r[0]!;
    return n.set;
  }

  private _charClass(start: number): CharSet {
    let negated = false;
    if (this._peek() === '^') {
      negated = true;
      this._i++;
    }
    const ranges: number[] = [];
    while (this._peek() !== ']') {
      const a = this._classAtom(start);
      if (this._peek() === '-' && this._s[this._i + 1] !== ']' && this._s[this._i + 1] !== undefined) {
        this._i++;
        const b = this._classAtom(start);
        if (typeof a !== 'number' || typeof b !== 'number') throw new PatternError(`invalid range with a class escape at ${start}`);
        if (b < a) throw new PatternError(`range out of order in character class at ${start}`);
        ranges.push(a, b);
      } else if (typeof a === 'number') ranges.push(a, a);
      else ranges.push(...(a.negated ? negateRanges(normalize(a.ranges)) : a.ranges));
    }
    this._i++;
    return { ranges: normalize(ranges), negated };
  }
}

function isQuantifierStart(c: string | undefined): boolean {
  return c === '*' || c === '+' || c === '?' || c === '{';
}

// Program instructions.
export const OP_SET = 0;
export const OP_ANY = 1;
export const OP_SPLIT = 2;
export const OP_JMP = 3;
export const OP_ASSERT = 4;
export const OP_MATCH = 5;

interface Program {
  op: number[];
  x: number[];
  y: number[];
  sets: (CompiledSet | null)[];
}

/** A char set with an ASCII lookup table. */
export interface CompiledSet {
  ascii: Uint8Array;
  ranges: Int32Array;
  negated: boolean;
}

function compileSet(set: CharSet): CompiledSet {
  const ascii = new Uint8Array(128);
  const r = set.ranges;
  for (let i = 0; i < r.length; i += 2) for (let c = r[i]!; c <= Math.min(r[i + 1]!, 127); c++) ascii[c] = 1;
  return { ascii, ranges: Int32Array.from(r), negated: set.negated };
}

export function inSet(s: CompiledSet, c: number): boolean {
  let hit: boolean;
  if (c < 128) hit = s.ascii[c] === 1;
  else {
    hit = false;
    const r = s.ranges;
    for (let i = 0; i < r.length; i += 2) {
      if (c < r[i]!) break;
      if (c <= r[i + 1]!) {
        hit = true;
        break;
      }
    }
  }
  return hit !== s.negated;
}

const ASSERT_CODES: Record<Assertion, number> = { bol: 0, eol: 1, wordb: 2, nwordb: 3 };

class Compiler {
  readonly p: Program = { op: [], x: [], y: [], sets: [] };

  private _emit(op: number, x = 0, y = 0, set: CompiledSet | null = null): number {
    if (this.p.op.length >= MAX_PROGRAM_SIZE) throw new PatternError(`pattern compiles to more than ${MAX_PROGRAM_SIZE} states`);
    this.p.op.push(op);
    this.p.x.push(x);
    this.p.y.push(y);
    this.p.sets.push(set);
    return this.p.op.length - 1;
  }

  node(n: Node): void {
    switch (n.t) {
      case 'set':
        this._emit(OP_SET, 0, 0, compileSet(n.set));
        return;
      case 'any':
        this._emit(OP_ANY);
        return;
      case 'assert':
        this._emit(OP_ASSERT, ASSERT_CODES[n.kind]);
        return;
      case 'cat':
        for (const item of n.items) this.node(item);
        return;
      case 'alt': {
        // SPLIT L1, next-split ...; each branch jumps to the end.
        const jumps: number[] = [];
        for (let k = 0; k < n.items.length; k++) {
          if (k < n.items.length - 1) {
            const split = this._emit(OP_SPLIT);
            this.p.x[split] = split + 1;
            this.node(n.items[k]!);
            jumps.push(this._emit(OP_JMP));
            this.p.y[split] = this.p.op.length;
          } else this.node(n.items[k]!);
        }
        for (const j of jumps) this.p.x[j] = this.p.op.length;
        return;
      }
      case 'rep': {
        for (let k = 0; k < n.min; k++) this.node(n.node);
        if (n.max === Infinity) {
          const split = this._emit(OP_SPLIT);
          this.p.x[split] = split + 1;
          this.node(n.node);
          this._emit(OP_JMP, split);
          this.p.y[split] = this.p.op.length;
        } else {
          for (let k = n.min; k < n.max; k++) {
            const split = this._emit(OP_SPLIT);
            this.p.x[split] = split + 1;
            this.node(n.node);
            this.p.y[split] = this.p.op.length;
          }
        }
        return;
      }
    }
  }
}

function isWordChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || (c >= 0x61 && c <= 0x7a);
}

export function isLineTerminator(c: number): boolean {
  return c === 10 || c === 13 || c === 0x2028 || c === 0x2029;
}

/**
 * What an accelerator sees of a compiled pattern: the program (instructions `op` with operands `x`, `y` and char
 * sets; `x` of an ASSERT is 0 `^`, 1 `$`, 2 `\b`, 3 `\B`), whether matches start at 0 only, and the Pike VM to fall
 * back on.
 */
export interface ProgramView {
  readonly op: Int32Array;
  readonly x: Int32Array;
  readonly y: Int32Array;
  readonly sets: readonly (CompiledSet | null)[];
  readonly anchored: boolean;
  pike(s: string): boolean;
}

/**
 * Builds a faster matcher for a program (same answers, still linear), or null to keep the Pike VM. The lazy DFA in
 * `pattern-dfa.ts` installs itself here; the browser bundle leaves it out, so there `matches` runs the Pike VM.
 */
export type PatternAccelerator = (program: ProgramView) => ((s: string) => boolean) | null;

let accelerator: PatternAccelerator | null = null;

/** Installs (or, with null, removes) the accelerator used by patterns compiled from now on. */
export function setPatternAccelerator(a: PatternAccelerator | null): void {
  accelerator = a;
}

/** A compiled pattern: `test` answers whether it matches anywhere in the input, in linear time. */
export class LinearPattern {
  readonly op: Int32Array;
  readonly x: Int32Array;
  readonly y: Int32Array;
  readonly sets: (CompiledSet | null)[];
  readonly anchored: boolean;
  private readonly _mark: Float64Array;
  private _gen = 0;
  private _clist: Int32Array;
  private _nlist: Int32Array;
  private readonly _stack: Int32Array;
  /** A literal every match contains (checked with `includes` before running the automaton), or ''. */
  private _required = '';
  /** Set when the whole pattern is a literal: answered with string methods, no automaton. */
  private _literal: { text: string; start: boolean; end: boolean } | null = null;
  private readonly _cc = new Int32Array(1);
  private readonly _nc = new Int32Array(1);
  /** The accelerator's matcher for this pattern (see `setPatternAccelerator`), or null: Pike VM only. */
  private _fast: ((s: string) => boolean) | null = null;

  constructor(p: Program, anchored: boolean) {
    this.op = Int32Array.from(p.op);
    this.x = Int32Array.from(p.x);
    this.y = Int32Array.from(p.y);
    this.sets = p.sets;
    this.anchored = anchored;
    const n = p.op.length;
    this._mark = new Float64Array(n);
    this._clist = new Int32Array(n);
    this._nlist = new Int32Array(n);
    this._stack = new Int32Array(n * 2 + 2);
  }


  /** Adds the thread at `pc` and everything reachable by empty moves at `pos`; true if that reaches MATCH. */
  private _add(list: Int32Array, count: Int32Array, pc0: number, s: string, pos: number, gen: number): boolean {
    const { op, x, y, _mark: mark, _stack: stack } = this;
    let sp = 0;
    stack[sp++] = pc0;
    while (sp > 0) {
      const pc = stack[--sp]!;
      if (mark[pc] === gen) continue;
      mark[pc] = gen;
      switch (op[pc]) {
        case OP_JMP:
          stack[sp++] = x[pc]!;
          break;
        case OP_SPLIT:
          stack[sp++] = y[pc]!;
          stack[sp++] = x[pc]!;
          break;
        case OP_ASSERT: {
          const kind = x[pc]!;
          let ok: boolean;
          if (kind === 0) ok = pos === 0;
          else if (kind === 1) ok = pos === s.length;
          else {
            const before = pos > 0 && isWordChar(s.charCodeAt(pos - 1));
            const after = pos < s.length && isWordChar(s.charCodeAt(pos));
            ok = (before !== after) === (kind === 2);
          }
          if (ok) stack[sp++] = pc + 1;
          break;
        }
        case OP_MATCH:
          return true;
        default:
          list[count[0]!++] = pc;
      }
    }
    return false;
  }

  /** Uses `a`'s matcher for this pattern, if it builds one. */
  accelerate(a: PatternAccelerator | null): void {
    this._fast = a?.(this) ?? null;
  }

  /** Installs the literal shortcuts found by `literalFacts`. */
  useLiterals(facts: LiteralFacts): void {
    this._required = facts.required;
    this._literal = facts.literal;
  }

  /** Whether the pattern matches anywhere in `s` (false for strings longer than `MAX_MATCH_INPUT`). */
  test(s: string): boolean {
    const len = s.length;
    if (len > MAX_MATCH_INPUT) return false;
    const lit = this._literal;
    if (lit !== null) {
      if (lit.start && lit.end) return s === lit.text;
      if (lit.start) return s.startsWith(lit.text);
      if (lit.end) return s.endsWith(lit.text);
      return s.includes(lit.text);
    }
    if (this._required !== '' && !s.includes(this._required)) return false;
    return this._fast !== null && len > 0 ? this._fast(s) : this.pike(s);
  }

  /** The Pike VM: all threads in lockstep over the input, O(length × program size), no cache. */
  pike(s: string): boolean {
    const len = s.length;
    if (this._gen > 1e15) {
      this._mark.fill(0);
      this._gen = 0;
    }
    const base = this._gen;
    this._gen += len + 2;
    let clist = this._clist;
    let nlist = this._nlist;
    const cc = this._cc;
    const nc = this._nc;
    cc[0] = 0;
    for (let pos = 0; pos <= len; pos++) {
      const gen = base + pos + 1;
      if (pos === 0 || !this.anchored) {
        if (this._add(clist, cc, 0, s, pos, gen)) return true;
      }
      if (cc[0] === 0) {
        if (this.anchored) return false;
        continue;
      }
      if (pos === len) break;
      const c = s.charCodeAt(pos);
      nc[0] = 0;
      for (let k = 0; k < cc[0]!; k++) {
        const pc = clist[k]!;
        const o = this.op[pc];
        const hit = o === OP_ANY ? !isLineTerminator(c) : inSet(this.sets[pc]!, c);
        if (hit && this._add(nlist, nc, pc + 1, s, pos + 1, gen + 1)) return true;
      }
      const t = clist;
      clist = nlist;
      nlist = t;
      cc[0] = nc[0]!;
    }
    return false;
  }
}

export type PatternResult = { ok: true; pattern: LinearPattern } | { ok: false; reason: string };

/** Parses and compiles a pattern; never throws. */
export function compilePattern(source: string): PatternResult {
  if (typeof source !== 'string') return { ok: false, reason: 'must be a string' };
  if (source.length > MAX_PATTERN_LENGTH) return { ok: false, reason: `longer than ${MAX_PATTERN_LENGTH} characters` };
  try {
    const ast = new Parser(source).parse();
    const c = new Compiler();
    c.node(ast);
    c.p.op.push(OP_MATCH);
    c.p.x.push(0);
    c.p.y.push(0);
    c.p.sets.push(null);
    const anchored = startsAnchored(ast);
    const pattern = new LinearPattern(c.p, anchored);
    pattern.useLiterals(literalFacts(ast));
    pattern.accelerate(accelerator);
    return { ok: true, pattern };
  } catch (e) {
    if (e instanceof PatternError) return { ok: false, reason: e.message };
    return { ok: false, reason: 'invalid regular expression' };
  }
}

/** True when every match must start at position 0 (a leading `^`), so later start positions need not be tried. */
function startsAnchored(n: Node): boolean {
  if (n.t === 'assert') return n.kind === 'bol';
  if (n.t === 'cat') return n.items.length > 0 && startsAnchored(n.items[0]!);
  if (n.t === 'alt') return n.items.every(startsAnchored);
  return false;
}

interface LiteralFacts {
  required: string;
  literal: { text: string; start: boolean; end: boolean } | null;
}

function literalChar(n: Node): string | undefined {
  if (n.t !== 'set' || n.set.negated || n.set.ranges.length !== 2 || n.set.ranges[0] !== n.set.ranges[1]) return undefined;
  return String.fromCharCode(n.set.ranges[0]!);
}

/**
 * Literal shortcuts, sound for a search: a pattern that is only literal characters (optionally `^`-/`$`-anchored)
 * is answered by string methods; otherwise the longest run of literal characters in the top-level sequence must
 * occur in any matching input, so an input without it is refused before the automaton runs.
 */
function literalFacts(ast: Node): LiteralFacts {
  const items = ast.t === 'cat' ? ast.items : [ast];
  let required = '';
  let run = '';
  let allLiteral = true;
  let start = false;
  let end = false;
  items.forEach((n, i) => {
    const ch = literalChar(n);
    if (ch !== undefined) {
      run += ch;
      if (run.length > required.length) required = run;
      return;
    }
    run = '';
    if (n.t === 'assert' && n.kind === 'bol' && i === 0) start = true;
    else if (n.t === 'assert' && n.kind === 'eol' && i === items.length - 1) end = true;
    else allLiteral = false;
  });
  if (allLiteral && ast.t !== 'alt') {
    let text = '';
    for (const n of items) text += literalChar(n) ?? '';
    return { required: '', literal: { text, start, end } };
  }
  return { required, literal: null };
}
