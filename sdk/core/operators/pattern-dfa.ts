/**
 * The lazy DFA that accelerates `matches` (a `PatternEngine`, see `pattern.ts`): states are sets of NFA
 * instructions, created on first use and cached with their transitions, so a warm pattern costs one table lookup
 * per character, still linear in the input. A separate module so the browser bundle can leave it out (there the
 * Pike VM answers alone). Importing it changes nothing: it accelerates only the patterns it is passed to, by
 * `compilePattern(source, lazyDfa)` or `CompileOptions.patternEngine` (the server's compiled environments, and the
 * SDK's client on Node by default).
 */
import { inSet, OP_ASSERT, OP_JMP, OP_MATCH, OP_SET, OP_SPLIT, type CharSet, type PatternEngine, type ProgramView } from './pattern.js';

/** A state of the lazy DFA. */
interface DState {
  /** Character-consuming instructions and parked `$` assertions, sorted. */
  readonly pcs: Int32Array;
  /** MATCH is reachable: the input matches as soon as this state is entered. */
  readonly accepting: boolean;
  /** Whether the state accepts at the end of the input: -1 not yet known, 0 no, 1 yes. */
  endAccepting: number;
  /** Cached transitions on ASCII code units, and on (at most 256) others. */
  readonly ascii: (DState | undefined)[];
  wide: Map<number, DState> | null;
}

/** Most DFA states one pattern may build (about 1 KB each); beyond it evaluation uses the Pike VM (still linear). */
export const MAX_DFA_STATES = 256;

class LazyDfa {
  private readonly dstates = new Map<string, DState>();
  private dstart: DState | null = null;
  private readonly dmark: Int32Array;
  private dgen = 0;
  private readonly dstack: Int32Array;
  /** The program's instructions as columns: op, operands x and y, char sets. */
  private readonly op: Int32Array;
  private readonly x: Int32Array;
  private readonly y: Int32Array;
  private readonly sets: readonly (CharSet | null)[];

  constructor(private readonly p: ProgramView) {
    const n = p.prog.length;
    this.dmark = new Int32Array(n);
    this.dstack = new Int32Array(n * 3 + 4);
    this.op = Int32Array.from(p.prog, (i) => i[0]);
    this.x = Int32Array.from(p.prog, (i) => i[1]);
    this.y = Int32Array.from(p.prog, (i) => i[2]);
    this.sets = p.prog.map((i) => i[3]);
  }

  /**
   * The epsilon closure of `seeds` as a (cached) DFA state: the character-consuming instructions reached, plus
   * `$` assertions "parked" until the end of the input. `^` holds only when `atStart`. Null when the cache is full.
   */
  private closure(seeds: number[], atStart: boolean): DState | null {
    const { dmark, dstack } = this;
    const { op, x, y } = this;
    const gen = ++this.dgen;
    const out: number[] = [];
    let accepting = false;
    let sp = 0;
    for (let i = seeds.length - 1; i >= 0; i--) dstack[sp++] = seeds[i]!;
    while (sp > 0) {
      const pc = dstack[--sp]!;
      if (dmark[pc] === gen) continue;
      dmark[pc] = gen;
      switch (op[pc]) {
        case OP_JMP:
          dstack[sp++] = x[pc]!;
          break;
        case OP_SPLIT:
          dstack[sp++] = y[pc]!;
          dstack[sp++] = x[pc]!;
          break;
        case OP_ASSERT:
          if (x[pc] === 0) {
            if (atStart) dstack[sp++] = pc + 1;
          } else out.push(pc); // `$`: decided at the end of the input
          break;
        case OP_MATCH:
          accepting = true;
          break;
        default:
          out.push(pc);
      }
    }
    out.sort((a, b) => a - b);
    const key = (accepting ? '!' : '') + out.join(',');
    let st = this.dstates.get(key);
    if (st !== undefined) return st;
    if (this.dstates.size >= MAX_DFA_STATES) return null;
    st = { pcs: Int32Array.from(out), accepting, endAccepting: -1, ascii: new Array<DState | undefined>(128), wide: null };
    this.dstates.set(key, st);
    return st;
  }

  /** The state after reading `c` in `st`, or null when the cache is full. */
  private step(st: DState, c: number): DState | null {
    const seeds: number[] = [];
    const pcs = st.pcs;
    for (let k = 0; k < pcs.length; k++) {
      const pc = pcs[k]!;
      if (this.op[pc] === OP_SET && inSet(this.sets[pc]!, c)) seeds.push(pc + 1);
    }
    if (!this.p.anchored) seeds.push(0); // a match may start at the next position too
    return this.closure(seeds, false);
  }

  /** Whether `st`, reached at the end of a non-empty input, accepts: follow its parked `$` assertions. */
  private acceptsAtEnd(st: DState): boolean {
    if (st.endAccepting >= 0) return st.endAccepting === 1;
    const { dmark, dstack } = this;
    const { op, x, y } = this;
    const gen = ++this.dgen;
    let sp = 0;
    let accepts = false;
    for (let k = 0; k < st.pcs.length; k++) if (op[st.pcs[k]!] === OP_ASSERT) dstack[sp++] = st.pcs[k]! + 1;
    while (sp > 0 && !accepts) {
      const pc = dstack[--sp]!;
      if (dmark[pc] === gen) continue;
      dmark[pc] = gen;
      const o = op[pc];
      if (o === OP_MATCH) accepts = true;
      else if (o === OP_JMP) dstack[sp++] = x[pc]!;
      else if (o === OP_SPLIT) {
        dstack[sp++] = y[pc]!;
        dstack[sp++] = x[pc]!;
      } else if (o === OP_ASSERT && x[pc] === 1) dstack[sp++] = pc + 1;
    }
    st.endAccepting = accepts ? 1 : 0;
    return accepts;
  }

  /**
   * Runs the pattern as a lazily built DFA: states are sets of NFA instructions, created on first use and cached
   * with their transitions, so a warm pattern costs one table lookup per character. Falls back to the Pike VM
   * when more than `MAX_DFA_STATES` states would be needed.
   */
  test(s: string): boolean {
    const start = this.dstart ?? (this.dstart = this.closure([0], true));
    if (start === null) return this.p.pike(s);
    let st: DState = start;
    if (st.accepting) return true;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      let next: DState | undefined = c < 128 ? st.ascii[c] : st.wide?.get(c);
      if (next === undefined) {
        const computed = this.step(st, c);
        if (computed === null) return this.p.pike(s);
        next = computed;
        if (c < 128) st.ascii[c] = next;
        else if ((st.wide ??= new Map()).size < 256) st.wide.set(c, next);
      }
      st = next;
      if (st.accepting) return true;
      if (st.pcs.length === 0 && this.p.anchored) return false;
    }
    return this.acceptsAtEnd(st);
  }
}

/**
 * The DFA for a program without word-boundary assertions (those need the Pike VM's look at both neighbours): each
 * compiled pattern gets its own state cache.
 */
export const lazyDfa: PatternEngine = (p) => {
  if (p.prog.some(([op, x]) => op === OP_ASSERT && x >= 2)) return null;
  const dfa = new LazyDfa(p);
  return (s) => dfa.test(s);
};
