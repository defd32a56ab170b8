/**
 * Translation of flagd flag definitions (the OpenFeature flagd format: `{ flags: { key: { state, variants,
 * defaultVariant, targeting } }, $evaluators }`) into Aviary flags and states. Pure: no I/O; the CLI
 * (server/cli/import-flagd.ts) writes the result through the admin API. The mapping, and where the two differ, is
 * documented in docs/import-flagd.md.
 *
 * A flag's targeting (JSONLogic returning a variant name) becomes an ordered list of rules and a fallthrough:
 * - `if` chains `[c1, v1, c2, v2, ..., else]` become one rule per branch, in order; an `else` that is itself an `if`
 *   continues the chain; a branch value is a variant name (booleans name the variants "true"/"false", as in flagd),
 *   `null` (the default variant) or a `fractional` (a rollout);
 * - a condition is put in disjunctive normal form: `and` crosses, `or` adds rules with the same serve, `!` is pushed
 *   down to the leaves (De Morgan); each conjunction is a rule of attribute conditions;
 * - leaves: `==`/`!=`/`===`/`!==` (a `var` and a scalar: `in` / negated `in`), `in` (a `var` in a list: `in`; a
 *   string in a `var`: `contains`), `<`/`<=`/`>`/`>=` (a `var` and a number: `lt`/`lte`/`gt`/`gte`), `starts_with`/
 *   `ends_with`, `sem_ver` (`=`, `!=`, `<`, `<=`, `>`, `>=`, `^`, `~`), `true`/`false` literals, and `$ref` (the
 *   evaluator is inlined); `var` paths are attribute names as written (`user.name`: Aviary contexts are flat),
 *   `targetingKey` is Aviary's `key`, and `$flagd.flagKey` is the flag's key (a comparison with it is decided now);
 * - a top-level `fractional` becomes the fallthrough's rollout: relative weights to percents, the bucketing
 *   attribute from its first argument (`{var}` or `{cat: [<seed>, {var}]}`: the seed becomes the rollout's salt, so
 *   flags sharing a seed still bucket together). Aviary's bucketing (murmur3 of salt and attribute: CONTRACT §3) is
 *   not flagd's, so the same context may land in another bucket: proportions and shared-seed correlation are kept,
 *   not individual assignments.
 * A condition flagd's operator always answers with an error (`starts_with` a number, `sem_ver` with an invalid version
 * or operator) makes flagd serve the default variant whenever evaluation reaches it: the chain ends there, serving the
 * default variant (with a note). Anything else is refused, with the flag, the JSON path and why.
 */

export interface AviaryVariant {
  key: string;
  value: unknown;
}
export interface AviaryCondition {
  attribute: string;
  op: string;
  values?: Array<string | number | boolean>;
  negate?: boolean;
}
export type AviaryServe =
  | { variant: string }
  | { rollout: { weights: Array<{ variant: string; percent: number }>; bucketBy?: string; salt?: string } };
export interface AviaryRule {
  id: string;
  conditions: AviaryCondition[];
  serve: AviaryServe;
}
export interface TranslatedFlag {
  key: string;
  kind: 'boolean' | 'string' | 'number' | 'json';
  variants: AviaryVariant[];
  description: string;
  state: { enabled: boolean; offVariant: string; targets: []; rules: AviaryRule[]; fallthrough: AviaryServe };
}
export interface Refusal {
  flag: string;
  path: string;
  why: string;
}
export interface Translation {
  flags: TranslatedFlag[];
  refused: Refusal[];
  notes: Refusal[];
}

const FLAG_KEY = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const VARIANT_KEY = /^[A-Za-z0-9_][A-Za-z0-9._:-]{0,159}$/;
const MAX_RULES = 1000;

class Refused extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** A condition flagd's operator always answers with an error (null): reaching it makes flagd serve the default variant. */
class AlwaysError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Conj = AviaryCondition[];
/** A condition in disjunctive normal form: any of the conjunctions. [] is false, [[]] is true. */
type Dnf = Conj[];

const isObj = (v: unknown): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isScalar = (v: unknown): v is string | number | boolean => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
const ptr = (path: string, seg: string | number) => `${path}/${String(seg).replace(/~/g, '~0').replace(/\//g, '~1')}`;

/** The one operator of a JSONLogic node, or null. */
function opOf(node: Json): [string, Json] | null {
  if (!isObj(node)) return null;
  const keys = Object.keys(node);
  return keys.length === 1 ? [keys[0]!, node[keys[0]!]!] : null;
}

function negateConj(c: AviaryCondition): AviaryCondition {
  return c.negate ? { attribute: c.attribute, op: c.op, ...(c.values ? { values: c.values } : {}) } : { ...c, negate: true };
}

function and(a: Dnf, b: Dnf): Dnf {
  const out: Dnf = [];
  for (const x of a) for (const y of b) out.push([...x, ...y]);
  return out;
}

/** not(DNF) as DNF (De Morgan, then distribute). */
function not(d: Dnf): Dnf {
  let out: Dnf = [[]];
  for (const conj of d)
    out = and(
      out,
      conj.map((c) => [negateConj(c)]),
    );
  return out;
}

/** Parses a semantic version as flagd accepts it in a rule: a leading v, missing minor/patch padded. */
function semverLiteral(v: Json): { text: string; major: number; minor: number; patch: number } | null {
  if (typeof v !== 'string' && typeof v !== 'number') return null;
  const s = String(v).replace(/^[vV]/, '');
  const m = /^(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?((?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)$/.exec(s);
  if (!m) return null;
  const [major, minor, patch] = [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
  return { text: `${major}.${minor}.${patch}${m[4] ?? ''}`, major, minor, patch };
}

class FlagTranslator {
  private depth = 0;
  readonly notes: Refusal[] = [];

  constructor(
    private readonly key: string,
    private readonly evaluators: Record<string, Json>,
  ) {}

  /** The attribute a `var` names, or null when `node` is not a `var`. */
  private attribute(node: Json, path: string): string | null {
    const o = opOf(node);
    if (o?.[0] !== 'var') return null;
    let name = o[1];
    if (Array.isArray(name)) {
      if (name.length !== 1)
        throw new Refused(ptr(path, 'var'), 'a `var` with a default value has no Aviary equivalent (a missing attribute fails the condition)');
      name = name[0]!;
    }
    if (typeof name !== 'string' || name === '') throw new Refused(ptr(path, 'var'), '`var` must name an attribute');
    if (name === 'targetingKey') return 'key';
    if (name === '$flagd.timestamp')
      throw new Refused(
        ptr(path, 'var'),
        '`$flagd.timestamp` (the evaluation time) has no Aviary equivalent: use a scheduled change (`aviary schedules create`)',
      );
    return name;
  }

  /** A `var` and a literal in either order: [attribute, literal, reversed], or null. */
  private varAndLiteral(args: Json, path: string): [string, Json, boolean] | null {
    if (!Array.isArray(args) || args.length !== 2) return null;
    const a = this.attribute(args[0]!, ptr(path, 0));
    if (a !== null && this.attribute(args[1]!, ptr(path, 1)) === null) return [a, args[1]!, false];
    const b = this.attribute(args[1]!, ptr(path, 1));
    if (b !== null && a === null) return [b, args[0]!, true];
    return null;
  }

  /** A JSONLogic condition as DNF. */
  condition(node: Json, path: string): Dnf {
    if (node === true) return [[]];
    if (node === false || node === null) return [];
    if (++this.depth > 64) throw new Refused(path, 'targeting nested too deeply (or a `$ref` cycle)');
    try {
      const o = opOf(node);
      if (!o) throw new Refused(path, `not a condition Aviary can express: ${JSON.stringify(node).slice(0, 80)}`);
      const [op, args] = o;
      const at = ptr(path, op);
      switch (op) {
        case '$ref': {
          if (typeof args !== 'string' || !(args in this.evaluators)) throw new Refused(at, `no evaluator "${String(args)}" in $evaluators`);
          return this.condition(this.evaluators[args]!, `/$evaluators/${args}`);
        }
        case 'and':
        case 'or': {
          if (!Array.isArray(args) || args.length === 0) throw new Refused(at, `\`${op}\` needs a list of conditions`);
          const parts = args.map((a, i) => this.inner(a, ptr(at, i)));
          return op === 'and' ? parts.reduce((x, y) => and(x, y)) : parts.flat();
        }
        case '!':
          return not(this.inner(Array.isArray(args) ? (args.length === 1 ? args[0]! : (null as Json)) : args, ptr(at, 0)));
        case '!!':
          return this.inner(Array.isArray(args) ? args[0]! : args, ptr(at, 0));
        case '==':
        case '===':
        case '!=':
        case '!==': {
          if (Array.isArray(args) && args.length === 2 && args.some((a) => opOf(a)?.[0] === 'var' && [opOf(a)![1]].flat()[0] === '$flagd.flagKey')) {
            const other = args.find((a) => !(opOf(a)?.[0] === 'var'));
            const equal = other === this.key;
            return equal === (op === '==' || op === '===') ? [[]] : [];
          }
          const vl = this.varAndLiteral(args, at);
          if (!vl || !isScalar(vl[1])) throw new Refused(at, `\`${op}\` is translated only between an attribute and a string, number or boolean`);
          const c: AviaryCondition = { attribute: vl[0], op: 'in', values: [vl[1]] };
          return [[op.startsWith('!') ? { ...c, negate: true } : c]];
        }
        case 'in': {
          if (!Array.isArray(args) || args.length !== 2) throw new Refused(at, '`in` needs two arguments');
          const attr = this.attribute(args[0]!, ptr(at, 0));
          if (attr !== null && Array.isArray(args[1]) && args[1].every(isScalar))
            return [[{ attribute: attr, op: 'in', values: args[1] as Array<string | number | boolean> }]];
          const hay = this.attribute(args[1]!, ptr(at, 1));
          if (hay !== null && typeof args[0] === 'string') return [[{ attribute: hay, op: 'contains', values: [args[0]] }]];
          throw new Refused(at, '`in` is translated only as an attribute in a list of scalars, or a string in an attribute');
        }
        case '<':
        case '<=':
        case '>':
        case '>=': {
          const vl = this.varAndLiteral(args, at);
          if (!vl || typeof vl[1] !== 'number')
            throw new Refused(at, `\`${op}\` is translated only between an attribute and a number (not the three-argument "between" form)`);
          const flip: Record<string, string> = { '<': '>', '<=': '>=', '>': '<', '>=': '<=' };
          const name: Record<string, string> = { '<': 'lt', '<=': 'lte', '>': 'gt', '>=': 'gte' };
          return [[{ attribute: vl[0], op: name[vl[2] ? flip[op]! : op]!, values: [vl[1]] }]];
        }
        case 'starts_with':
        case 'ends_with': {
          if (!Array.isArray(args) || args.length !== 2) throw new Refused(at, `\`${op}\` needs an attribute and a string`);
          const attr = this.attribute(args[0]!, ptr(at, 0));
          if (attr === null) throw new Refused(at, `\`${op}\` is translated only with an attribute first`);
          if (typeof args[1] !== 'string') throw new AlwaysError(at, `\`${op}\` with a non-string argument is an error in flagd`);
          return [[{ attribute: attr, op: op === 'starts_with' ? 'startsWith' : 'endsWith', values: [args[1]] }]];
        }
        case 'sem_ver': {
          if (!Array.isArray(args) || args.length !== 3) throw new Refused(at, '`sem_ver` needs an attribute, an operator and a version');
          const attr = this.attribute(args[0]!, ptr(at, 0));
          if (attr === null) throw new Refused(at, '`sem_ver` is translated only with an attribute first');
          const v = semverLiteral(args[2]!);
          const cmp = args[1];
          if (!v || typeof cmp !== 'string' || !['=', '!=', '<', '<=', '>', '>=', '^', '~'].includes(cmp))
            throw new AlwaysError(at, '`sem_ver` with an invalid version or operator is an error in flagd');
          const c = (o: string, text = v.text, negate = false): AviaryCondition => ({
            attribute: attr,
            op: o,
            values: [text],
            ...(negate ? { negate } : {}),
          });
          switch (cmp) {
            case '=':
              return [[c('semverEq')]];
            case '!=':
              return [[c('semverEq', v.text, true)]];
            case '<':
              return [[c('semverLt')]];
            case '>':
              return [[c('semverGt')]];
            case '<=':
              return [[c('semverLt')], [c('semverEq')]];
            case '>=':
              return [[c('semverGt')], [c('semverEq')]];
            default: {
              // ^: same major (at least v); ~: same major.minor (at least v).
              const upper = cmp === '^' ? `${v.major + 1}.0.0-0` : `${v.major}.${v.minor + 1}.0-0`;
              return and([[c('semverGt')], [c('semverEq')]], [[c('semverLt', upper)]]);
            }
          }
        }
        default:
          throw new Refused(at, `the operator \`${op}\` has no Aviary equivalent`);
      }
    } finally {
      this.depth--;
    }
  }

  /** A condition inside `and`/`or`/`!`: one flagd always answers with an error is not translated there. */
  private inner(node: Json, path: string): Dnf {
    try {
      return this.condition(node, path);
    } catch (e) {
      if (e instanceof AlwaysError) throw new Refused(e.path, `${e.message}, inside \`and\`/\`or\`/\`!\`: not translated`);
      throw e;
    }
  }

  /** A `fractional` as a rollout. */
  rollout(args: Json, path: string, variants: Set<string>): AviaryServe {
    if (!Array.isArray(args) || args.length === 0) throw new Refused(path, '`fractional` needs buckets');
    let rest = args;
    let bucketBy: string | undefined;
    let salt: string | undefined;
    if (!Array.isArray(args[0])) {
      const first = args[0]!;
      const attr = this.attribute(first, ptr(path, 0));
      const cat = opOf(first);
      if (attr !== null) bucketBy = attr;
      else if (cat && cat[0] === 'cat' && Array.isArray(cat[1]) && cat[1].length === 2) {
        const [seed, v] = cat[1];
        const isFlagKey = opOf(seed!)?.[0] === 'var' && [opOf(seed!)![1]].flat()[0] === '$flagd.flagKey';
        const a = this.attribute(v!, ptr(ptr(path, 0), 'cat'));
        if (a === null || !(isFlagKey || typeof seed === 'string'))
          throw new Refused(ptr(path, 0), '`fractional` is translated only with a seed of `{cat: [<string or $flagd.flagKey>, {var}]}`');
        bucketBy = a;
        if (!isFlagKey) salt = seed as string;
      } else throw new Refused(ptr(path, 0), '`fractional` is translated only with a `var` or `cat` bucketing key');
      rest = args.slice(1);
    }
    const buckets: Array<[string, number]> = [];
    for (const [i, b] of rest.entries()) {
      const at = ptr(path, i + (rest === args ? 0 : 1));
      if (!Array.isArray(b) || b.length < 1 || b.length > 2) throw new Refused(at, 'a bucket is `[variant, weight]`');
      if (typeof b[0] !== 'string') throw new Refused(at, 'a bucket computed by an expression (nested `if`/`var`) has no Aviary equivalent');
      const weight = b.length === 2 ? b[1] : 1;
      if (typeof weight !== 'number' || weight < 0 || !Number.isFinite(weight))
        throw new Refused(at, 'a bucket weight must be a non-negative number (not an expression)');
      if (!variants.has(b[0])) throw new Refused(at, `"${b[0]}" is not a variant of the flag`);
      buckets.push([b[0], weight]);
    }
    const total = buckets.reduce((s, b) => s + b[1], 0);
    if (total <= 0) throw new Refused(path, 'every bucket weighs 0: flagd answers with an error');
    // Relative weights to percents with at most three decimals; the rounding remainder goes to the largest bucket.
    const weights = buckets.map(([variant, w]) => ({ variant, percent: Math.round((w / total) * 100_000) / 1000 }));
    const sum = weights.reduce((s, w) => s + Math.round(w.percent * 1000), 0);
    const largest = weights.reduce((m, w, i) => (w.percent > weights[m]!.percent ? i : m), 0);
    weights[largest]!.percent = Math.round(weights[largest]!.percent * 1000 + (100_000 - sum)) / 1000;
    const merged = new Map<string, number>();
    for (const w of weights) merged.set(w.variant, Math.round(((merged.get(w.variant) ?? 0) + w.percent) * 1000) / 1000);
    return {
      rollout: {
        weights: [...merged].map(([variant, percent]) => ({ variant, percent })),
        ...(bucketBy !== undefined && bucketBy !== 'key' ? { bucketBy } : {}),
        ...(salt !== undefined ? { salt } : {}),
      },
    };
  }
}

const variantName = (v: Json): string | null | undefined =>
  typeof v === 'string' ? v : typeof v === 'boolean' ? String(v) : v === null ? null : undefined;

/** Translates one flag (throws Refused). */
function translateFlag(key: string, def: Json, evaluators: Record<string, Json>, notes: Refusal[]): TranslatedFlag {
  const path = ptr('/flags', key);
  if (!FLAG_KEY.test(key)) throw new Refused(path, 'not a valid Aviary flag key (lower-case letters, digits, ".", "_", "-"; at most 128)');
  if (!isObj(def)) throw new Refused(path, 'a flag must be an object');
  const state = def.state;
  if (state !== 'ENABLED' && state !== 'DISABLED') throw new Refused(ptr(path, 'state'), 'must be ENABLED or DISABLED');
  if (!isObj(def.variants) || Object.keys(def.variants).length === 0) throw new Refused(ptr(path, 'variants'), 'a flag needs variants');
  const variants = Object.entries(def.variants).map(([k, value]) => ({ key: k, value }));
  for (const v of variants) if (!VARIANT_KEY.test(v.key)) throw new Refused(ptr(ptr(path, 'variants'), v.key), 'not a valid Aviary variant key');
  const names = new Set(variants.map((v) => v.key));
  const defaultVariant = def.defaultVariant;
  if (typeof defaultVariant !== 'string')
    throw new Refused(
      ptr(path, 'defaultVariant'),
      "no default variant: flagd answers with the caller's default, Aviary always serves a variant of the flag",
    );
  if (!names.has(defaultVariant)) throw new Refused(ptr(path, 'defaultVariant'), `"${defaultVariant}" is not a variant of the flag`);
  const values = variants.map((v) => v.value);
  const kind = values.every((v) => typeof v === 'boolean')
    ? 'boolean'
    : values.every((v) => typeof v === 'string')
      ? 'string'
      : values.every((v) => typeof v === 'number')
        ? 'number'
        : 'json';
  const t = new FlagTranslator(key, evaluators);
  const rules: AviaryRule[] = [];
  const serveOf = (v: Json, at: string): AviaryServe => {
    const rollout = opOf(v);
    if (rollout && rollout[0] === 'fractional') return t.rollout(rollout[1], ptr(at, 'fractional'), names);
    const name = variantName(v);
    if (name === undefined) throw new Refused(at, 'a branch must name a variant, be null (the default variant), an `if` or a `fractional`');
    const variant = name ?? defaultVariant;
    if (!names.has(variant)) throw new Refused(at, `"${variant}" is not a variant of the flag (flagd answers with an error)`);
    return { variant };
  };
  /** Adds the rules of `node` evaluated under `guard` (a conjunction); returns the serve when the chain ends unconditionally. */
  const chain = (node: Json, at: string): AviaryServe => {
    const o = opOf(node);
    if (o?.[0] !== 'if') return serveOf(node, at);
    const args = o[1];
    const ifAt = ptr(at, 'if');
    if (!Array.isArray(args) || args.length < 2) throw new Refused(ifAt, '`if` needs a condition and a value');
    let i = 0;
    for (; i + 1 < args.length; i += 2) {
      let cond: Dnf;
      try {
        cond = t.condition(args[i]!, ptr(ifAt, i));
      } catch (e) {
        if (!(e instanceof AlwaysError)) throw e;
        // flagd answers the default variant whenever evaluation reaches this condition: so does the rest of the chain.
        notes.push({ flag: key, path: e.path, why: `${e.message}: from here on the default variant is served, as flagd does` });
        return { variant: defaultVariant };
      }
      const thenAt = ptr(ifAt, i + 1);
      if (opOf(args[i + 1]!)?.[0] === 'if')
        throw new Refused(thenAt, 'an `if` in a "then" branch (a nested condition) is not translated; write it as `and`');
      if (cond.length === 0) {
        if (args[i] === false || args[i] === null) continue;
        notes.push({ flag: key, path: thenAt, why: 'this branch can never be taken: dropped' });
        continue;
      }
      const serve = serveOf(args[i + 1]!, thenAt);
      if (cond.some((c) => c.length === 0)) return serve; // always true: the rest is unreachable
      for (const conj of cond) rules.push({ id: `r${rules.length + 1}`, conditions: conj, serve });
      if (rules.length > MAX_RULES) throw new Refused(ifAt, `more than ${MAX_RULES} rules once expanded`);
    }
    return i < args.length ? chain(args[i]!, ptr(ifAt, i)) : { variant: defaultVariant };
  };
  let fallthrough: AviaryServe = { variant: defaultVariant };
  const targeting = def.targeting;
  if (targeting !== undefined && targeting !== null && !(isObj(targeting) && Object.keys(targeting).length === 0)) {
    fallthrough = chain(targeting, ptr(path, 'targeting'));
  }
  notes.push(...t.notes);
  if (state === 'DISABLED')
    notes.push({
      flag: key,
      path: ptr(path, 'state'),
      why: "DISABLED: imported switched off, serving the default variant (flagd answers with the caller's default)",
    });
  return {
    key,
    kind,
    variants,
    description: 'Imported from flagd.',
    state: { enabled: state === 'ENABLED', offVariant: defaultVariant, targets: [], rules, fallthrough },
  };
}

/** Translates a flagd document: every flag that can be, and the refusals (flag, JSON path, why) of those that cannot. */
export function translateFlagd(doc: unknown): Translation {
  const out: Translation = { flags: [], refused: [], notes: [] };
  if (!isObj(doc) || !isObj(doc.flags)) {
    out.refused.push({ flag: '', path: '/flags', why: 'a flagd document is an object with `flags`' });
    return out;
  }
  const evaluators = isObj(doc.$evaluators) ? doc.$evaluators : {};
  for (const [key, def] of Object.entries(doc.flags)) {
    const notes: Refusal[] = [];
    try {
      out.flags.push(translateFlag(key, def, evaluators, notes));
      out.notes.push(...notes);
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      out.refused.push({ flag: key, path: e.path, why: e.message });
    }
  }
  return out;
}
