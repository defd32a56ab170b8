/**
 * Operator semantics (CONTRACT §1): each operator compiles its `values` once into a test of one attribute scalar.
 * Values are never coerced between types: a test only ever matches attribute scalars of the type its values have.
 */
import type { AttributeScalar, Operator } from '../types.js';
import { parseIsoDate, toEpochMillis } from './dates.js';
import { compilePattern, type PatternEngine } from './pattern.js';
import { compareSemver, parseSemver } from './semver.js';

/** A compiled test of one attribute scalar against all of a condition's values ("any value matches"). */
export type ScalarTest = (v: AttributeScalar) => boolean;

/**
 * Compiles an operator with validated values (`matches` accelerated by `patternEngine`, if given). Throws on values
 * that validation would have rejected; compilation turns that into a malformed flag, never an evaluation-time error.
 */
export function compileScalarTest(op: Exclude<Operator, 'exists'>, values: readonly AttributeScalar[], patternEngine?: PatternEngine): ScalarTest {
  switch (op) {
    case 'in': {
      const set = new Set<AttributeScalar>(values);
      return (v) => set.has(v);
    }
    case 'startsWith':
    case 'endsWith':
    case 'contains': {
      const ss = strings(values);
      const has = op === 'startsWith' ? hasPrefix : op === 'endsWith' ? hasSuffix : (v: string, p: string) => v.includes(p);
      return (v) => {
        if (typeof v === 'string') for (let i = 0; i < ss.length; i++) if (has(v, ss[i]!)) return true;
        return false;
      };
    }
    case 'matches': {
      const patterns = strings(values).map((p) => {
        const r = compilePattern(p, patternEngine);
        return r.ok ? r.pattern : bad('pattern', `${p}: ${r.problem} at ${r.at}`);
      });
      return (v) => {
        if (typeof v === 'string') for (let i = 0; i < patterns.length; i++) if (patterns[i]!.test(v)) return true;
        return false;
      };
    }
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte': {
      // "Any value matches" for an ordering is one comparison against the most permissive value.
      const ns = values.map((v) => (typeof v === 'number' && Number.isFinite(v) ? v : bad('number', v)));
      if (ns.length === 0) bad('values', ns);
      const bound = op[0] === 'l' ? Math.max(...ns) : Math.min(...ns);
      return (v) => typeof v === 'number' && (op === 'lt' ? v < bound : op === 'lte' ? v <= bound : op === 'gt' ? v > bound : v >= bound);
    }
    case 'semverEq':
    case 'semverLt':
    case 'semverGt': {
      const vs = strings(values).map((s) => parseSemver(s) ?? bad('semver', s));
      const want = op === 'semverEq' ? 0 : op === 'semverLt' ? -1 : 1;
      const semverOf = memo(parseSemver);
      // Plain loops on this path: a closure over the attribute would be allocated on every evaluation.
      return (v) => {
        const p = typeof v === 'string' ? semverOf(v) : undefined;
        if (p !== undefined) for (let i = 0; i < vs.length; i++) if (Math.sign(compareSemver(p, vs[i]!)) === want) return true;
        return false;
      };
    }
    case 'before':
    case 'after': {
      const ms = values.map((x) => toEpochMillis(x) ?? bad('date', x));
      const before = op === 'before';
      const bound = before ? Math.max(...ms) : Math.min(...ms);
      const dateOf = memo(parseIsoDate);
      return (v) => {
        const t = typeof v === 'string' ? dateOf(v) : toEpochMillis(v);
        return t !== undefined && (before ? t < bound : t > bound);
      };
    }
    default:
      return bad('operator', op);
  }
}

/**
 * `parse` for attribute strings on the evaluation path, with its results kept: an application sends the same few
 * versions and dates over and over, so evaluation parses nothing twice. Each compiled condition has its own map
 * (cleared when it holds 256 entries), so memory stays bounded and nothing is shared between conditions.
 */
function memo<T>(parse: (s: string) => T): (s: string) => T {
  const cache = new Map<string, T>();
  return (s) => {
    let v = cache.get(s);
    if (v === undefined && !cache.has(s)) {
      v = parse(s);
      if (cache.size >= 256) cache.clear();
      cache.set(s, v);
    }
    return v as T;
  };
}

/** Refuses a value compilation cannot use: `bad variant "x"` (compilation turns it into a malformed flag). */
export function bad(what: string, v: unknown): never {
  throw new Error(`bad ${what} ${JSON.stringify(v)}`);
}

function strings(values: readonly AttributeScalar[]): string[] {
  return values.map((v) => (typeof v === 'string' ? v : bad('string value', v)));
}

// `String.prototype.startsWith` / `endsWith` are not inlined by V8 and cost tens of nanoseconds each; comparing
// code units directly gives the same answer and usually stops at the first character.
export function hasPrefix(v: string, p: string): boolean {
  const n = p.length;
  if (n > v.length) return false;
  for (let i = 0; i < n; i++) if (v.charCodeAt(i) !== p.charCodeAt(i)) return false;
  return true;
}

export function hasSuffix(v: string, p: string): boolean {
  const off = v.length - p.length;
  if (off < 0) return false;
  for (let i = p.length - 1; i >= 0; i--) if (v.charCodeAt(off + i) !== p.charCodeAt(i)) return false;
  return true;
}
