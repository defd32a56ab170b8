/**
 * Operator semantics (CONTRACT §1): each operator compiles its `values` once into a test of one attribute scalar.
 * Values are never coerced between types: a test only ever matches attribute scalars of the type its values have.
 */
import type { AttributeScalar, Operator } from '../types.js';
import { toEpochMillis, toEpochMillisCached } from './dates.js';
import { compilePattern } from './pattern.js';
import { compareSemver, parseSemver, parseSemverCached, type SemVer } from './semver.js';

/** A compiled test of one attribute scalar against all of a condition's values ("any value matches"). */
export type ScalarTest = (v: AttributeScalar) => boolean;

/**
 * Compiles an operator with validated values. Throws on values that validation would have rejected; compilation
 * turns that into a malformed flag, never an evaluation-time error.
 */
export function compileScalarTest(op: Exclude<Operator, 'exists'>, values: readonly AttributeScalar[]): ScalarTest {
  switch (op) {
    case 'in': {
      if (values.length === 1) {
        const only = values[0];
        return (v) => v === only;
      }
      const set = new Set<AttributeScalar>(values);
      return (v) => set.has(v);
    }
    case 'startsWith': {
      const ss = strings(values);
      return (v) => {
        if (typeof v !== 'string') return false;
        for (let i = 0; i < ss.length; i++) if (hasPrefix(v, ss[i]!)) return true;
        return false;
      };
    }
    case 'endsWith': {
      const ss = strings(values);
      return (v) => {
        if (typeof v !== 'string') return false;
        for (let i = 0; i < ss.length; i++) if (hasSuffix(v, ss[i]!)) return true;
        return false;
      };
    }
    case 'contains': {
      const ss = strings(values);
      return (v) => {
        if (typeof v !== 'string') return false;
        for (let i = 0; i < ss.length; i++) if (v.includes(ss[i]!)) return true;
        return false;
      };
    }
    case 'matches': {
      const tests = strings(values).map((p) => {
        const r = compilePattern(p);
        if (!r.ok) throw new Error(`bad pattern: ${r.reason}`);
        const pattern = r.pattern;
        return (s: string) => pattern.test(s);
      });
      return (v) => {
        if (typeof v !== 'string') return false;
        for (let i = 0; i < tests.length; i++) if (tests[i]!(v)) return true;
        return false;
      };
    }
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte': {
      // "Any value matches" for an ordering is one comparison against the most permissive value.
      const ns = numbers(values);
      const bound = op === 'lt' || op === 'lte' ? Math.max(...ns) : Math.min(...ns);
      if (op === 'lt') return (v) => typeof v === 'number' && v < bound;
      if (op === 'lte') return (v) => typeof v === 'number' && v <= bound;
      if (op === 'gt') return (v) => typeof v === 'number' && v > bound;
      return (v) => typeof v === 'number' && v >= bound;
    }
    case 'semverEq':
    case 'semverLt':
    case 'semverGt': {
      const vs = strings(values).map((s) => {
        const p = parseSemver(s);
        if (p === undefined) throw new Error(`bad semver ${JSON.stringify(s)}`);
        return p;
      });
      const want = op === 'semverEq' ? 0 : op === 'semverLt' ? -1 : 1;
      return (v) => {
        if (typeof v !== 'string') return false;
        const p = parseSemverCached(v);
        if (p === undefined) return false;
        for (let i = 0; i < vs.length; i++) if (Math.sign(compareSemver(p, vs[i] as SemVer)) === want) return true;
        return false;
      };
    }
    case 'before':
    case 'after': {
      const ms = values.map((x) => {
        const t = toEpochMillis(x);
        if (t === undefined) throw new Error(`bad date ${JSON.stringify(x)}`);
        return t;
      });
      if (op === 'before') {
        const bound = Math.max(...ms);
        return (v) => {
          const t = toEpochMillisCached(v);
          return t !== undefined && t < bound;
        };
      }
      const bound = Math.min(...ms);
      return (v) => {
        const t = toEpochMillisCached(v);
        return t !== undefined && t > bound;
      };
    }
    default:
      throw new Error(`unknown operator ${JSON.stringify(op)}`);
  }
}

function strings(values: readonly AttributeScalar[]): string[] {
  return values.map((v) => {
    if (typeof v !== 'string') throw new Error('expected string values');
    return v;
  });
}

function numbers(values: readonly AttributeScalar[]): number[] {
  const ns = values.map((v) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error('expected finite numbers');
    return v;
  });
  if (ns.length === 0) throw new Error('expected at least one value');
  return ns;
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
