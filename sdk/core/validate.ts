/**
 * Validation of flags, flag states and segments with path-addressed issues (JSON-pointer-like paths relative to
 * the validated document). Validators never throw; on success they return a clean copy holding only known fields.
 */
import { toEpochMillis } from './operators/dates.js';
import { patternProblem } from './operators/pattern-messages.js';
import { parseSemver } from './operators/semver.js';
import {
  OPERATORS,
  type AttributeCondition,
  type AttributeScalar,
  type Condition,
  type FlagDefinition,
  type FlagKind,
  type FlagState,
  type JsonValue,
  type Operator,
  type Prerequisite,
  type Rollout,
  type Rule,
  type Segment,
  type SegmentRule,
  type Serve,
  type Target,
  type ValidationIssue,
  type Variant,
  type Weight,
} from './types.js';

/** The outcome of a validation: the cleaned value, or every issue found. */
export type ValidationResult<T> = { ok: true; value: T } | { ok: false; issues: ValidationIssue[] };

/** Flag and segment keys (CONTRACT §1, fixed). */
export const KEY_PATTERN = /^[a-z0-9][a-z0-9._-]{0,127}$/;
/**
 * Variant keys and rule ids: printable, no spaces, and long enough to embed a flag or segment key (the canary
 * renders rules named `canary-cohort-<segment>`).
 */
export const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._:-]{0,159}$/;
export const FLAG_KINDS: readonly FlagKind[] = ['boolean', 'string', 'number', 'json'];
/** Limits that keep one document's compile and evaluation cost bounded. */
export const LIMITS = {
  variants: 100,
  rules: 1000,
  conditionsPerRule: 100,
  valuesPerCondition: 10_000,
  patternsPerCondition: 20,
  targetKeys: 100_000,
  segmentKeys: 100_000,
  stringLength: 1024,
  jsonDepth: 32,
  prerequisites: 100,
} as const;

/**
 * The flags of one environment, as prerequisites are checked against them: each live flag's variant keys and the
 * flags its current state requires. Without it, `validateFlagState` checks only the shape of `prerequisites` (a
 * missing flag then fails at evaluation, as CONTRACT §12 says it must).
 */
export type PrerequisiteFlags = ReadonlyMap<string, { readonly variants: readonly string[]; readonly prerequisites: readonly string[] }>;

const OPERATOR_SET: ReadonlySet<string> = new Set(OPERATORS);

class Issues {
  readonly list: ValidationIssue[] = [];
  add(path: string, message: string): void {
    this.list.push({ path: path === '' ? '/' : path, message });
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function esc(segment: string | number): string {
  return String(segment).replace(/~/g, '~0').replace(/\//g, '~1');
}

function at(path: string, segment: string | number): string {
  return `${path}/${esc(segment)}`;
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function optionalString(o: Record<string, unknown>, field: string, path: string, issues: Issues, max = 4096): string | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') {
    issues.add(at(path, field), `must be a string, got ${describeType(v)}`);
    return undefined;
  }
  if (v.length > max) issues.add(at(path, field), `must be at most ${max} characters`);
  return v;
}

function optionalBoolean(o: Record<string, unknown>, field: string, path: string, issues: Issues): boolean | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') {
    issues.add(at(path, field), `must be a boolean, got ${describeType(v)}`);
    return undefined;
  }
  return v;
}

function stringArray(v: unknown, path: string, issues: Issues, max: number, what: string): string[] {
  if (!Array.isArray(v)) {
    issues.add(path, `must be an array of ${what}, got ${describeType(v)}`);
    return [];
  }
  if (v.length > max) issues.add(path, `must have at most ${max} entries`);
  const out: string[] = [];
  v.forEach((item, i) => {
    if (typeof item !== 'string' || item.length === 0) issues.add(at(path, i), `must be a non-empty string`);
    else if (item.length > LIMITS.stringLength) issues.add(at(path, i), `must be at most ${LIMITS.stringLength} characters`);
    else out.push(item);
  });
  return out;
}

function checkJson(v: unknown, path: string, issues: Issues, depth = 0): JsonValue | undefined {
  if (depth > LIMITS.jsonDepth) {
    issues.add(path, `nests deeper than ${LIMITS.jsonDepth} levels`);
    return undefined;
  }
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') {
    if (Number.isFinite(v)) return v;
    issues.add(path, 'must be a finite number');
    return undefined;
  }
  if (Array.isArray(v)) {
    const out: JsonValue[] = [];
    v.forEach((x, i) => {
      const c = checkJson(x, at(path, i), issues, depth + 1);
      if (c !== undefined) out.push(c);
    });
    return out;
  }
  if (isRecord(v) && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
    const out: { [k: string]: JsonValue } = {};
    for (const k of Object.keys(v)) {
      const c = checkJson(v[k], at(path, k), issues, depth + 1);
      if (c !== undefined) out[k] = c;
    }
    return out;
  }
  issues.add(path, `must be a JSON value, got ${describeType(v)}`);
  return undefined;
}

function valueMatchesKind(kind: FlagKind, v: unknown): boolean {
  switch (kind) {
    case 'boolean':
      return typeof v === 'boolean';
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'json':
      return true;
  }
}

/**
 * Validates a flag definition: key pattern, kind, variants (a boolean flag without variants gets `on`=true and
 * `off`=false), values that match the kind, unique variant keys, optional description, tags and archived.
 */
export function validateFlagDefinition(input: unknown): ValidationResult<FlagDefinition> {
  const issues = new Issues();
  if (!isRecord(input)) {
    issues.add('', `must be an object, got ${describeType(input)}`);
    return { ok: false, issues: issues.list };
  }
  const key = input['key'];
  if (typeof key !== 'string') issues.add('/key', `is required and must be a string`);
  else if (!KEY_PATTERN.test(key)) issues.add('/key', `must match ${KEY_PATTERN.source}`);
  const kind = input['kind'];
  const kindOk = typeof kind === 'string' && (FLAG_KINDS as readonly string[]).includes(kind);
  if (!kindOk) issues.add('/kind', `must be one of ${FLAG_KINDS.join(', ')}`);

  let variants: Variant[] = [];
  const rawVariants = input['variants'];
  if (rawVariants === undefined && kind === 'boolean') {
    variants = [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ];
  } else if (!Array.isArray(rawVariants)) {
    issues.add('/variants', rawVariants === undefined ? 'is required for a non-boolean flag' : `must be an array, got ${describeType(rawVariants)}`);
  } else if (rawVariants.length === 0) {
    issues.add('/variants', 'must have at least one variant');
  } else {
    if (rawVariants.length > LIMITS.variants) issues.add('/variants', `must have at most ${LIMITS.variants} variants`);
    const seen = new Set<string>();
    rawVariants.forEach((raw, i) => {
      const p = at('/variants', i);
      if (!isRecord(raw)) {
        issues.add(p, `must be an object, got ${describeType(raw)}`);
        return;
      }
      const vk = raw['key'];
      let keyOk = false;
      if (typeof vk !== 'string') issues.add(at(p, 'key'), 'is required and must be a string');
      else if (!NAME_PATTERN.test(vk)) issues.add(at(p, 'key'), `must match ${NAME_PATTERN.source}`);
      else if (seen.has(vk)) issues.add(at(p, 'key'), `duplicates variant "${vk}"`);
      else keyOk = true;
      if (typeof vk === 'string') seen.add(vk);
      if (!('value' in raw)) {
        issues.add(at(p, 'value'), 'is required');
        return;
      }
      const before = issues.list.length;
      const value = checkJson(raw['value'], at(p, 'value'), issues);
      if (issues.list.length > before || value === undefined) return;
      if (kindOk && !valueMatchesKind(kind as FlagKind, value)) {
        issues.add(at(p, 'value'), `must be a ${kind === 'number' ? 'finite number' : kind} for a ${kind} flag, got ${describeType(value)}`);
        return;
      }
      const description = optionalString(raw, 'description', p, issues);
      if (keyOk) variants.push(description === undefined ? { key: vk as string, value } : { key: vk as string, value, description });
    });
  }
  const description = optionalString(input, 'description', '', issues);
  const tags = input['tags'] === undefined ? undefined : stringArray(input['tags'], '/tags', issues, 100, 'strings');
  const archived = optionalBoolean(input, 'archived', '', issues);
  if (issues.list.length > 0) return { ok: false, issues: issues.list };
  const value: FlagDefinition = { key: key as string, kind: kind as FlagKind, variants };
  if (description !== undefined) value.description = description;
  if (tags !== undefined) value.tags = tags;
  if (archived !== undefined) value.archived = archived;
  return { ok: true, value };
}

function scalarOk(v: unknown): v is AttributeScalar {
  return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

/** Checks one value against what operator `op` accepts; returns the problem or undefined. */
function valueProblem(op: Operator, v: unknown): string | undefined {
  switch (op) {
    case 'in':
      return scalarOk(v) ? undefined : `must be a string, finite number or boolean for "in", got ${describeType(v)}`;
    case 'startsWith':
    case 'endsWith':
    case 'contains':
      return typeof v === 'string' ? undefined : `must be a string for "${op}", got ${describeType(v)}`;
    case 'matches': {
      if (typeof v !== 'string') return `must be a string (a regular expression) for "matches", got ${describeType(v)}`;
      const problem = patternProblem(v);
      return problem === undefined ? undefined : `is not an accepted regular expression: ${problem}`;
    }
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte':
      return typeof v === 'number' && Number.isFinite(v) ? undefined : `must be a finite number for "${op}", got ${describeType(v)}`;
    case 'semverEq':
    case 'semverLt':
    case 'semverGt':
      if (typeof v !== 'string') return `must be a semantic version string for "${op}", got ${describeType(v)}`;
      return parseSemver(v) === undefined ? `is not a semantic version (MAJOR.MINOR.PATCH[-pre][+build]): ${JSON.stringify(v)}` : undefined;
    case 'before':
    case 'after':
      if (typeof v === 'number') return Number.isFinite(v) ? undefined : 'must be a finite number of epoch milliseconds';
      if (typeof v !== 'string') return `must be an ISO-8601 string or epoch milliseconds for "${op}", got ${describeType(v)}`;
      return toEpochMillis(v) === undefined ? `is not an ISO-8601 date with a time zone: ${JSON.stringify(v)}` : undefined;
    case 'exists':
      return '"exists" takes no values';
  }
}

function validateCondition(raw: unknown, path: string, issues: Issues, segmentKeys: ReadonlySet<string> | null): Condition | undefined {
  if (!isRecord(raw)) {
    issues.add(path, `must be an object, got ${describeType(raw)}`);
    return undefined;
  }
  const negate = optionalBoolean(raw, 'negate', path, issues);
  if ('segment' in raw) {
    if (segmentKeys === null) {
      issues.add(at(path, 'segment'), 'segment rules may not reference other segments');
      return undefined;
    }
    if ('attribute' in raw || 'op' in raw || 'values' in raw) {
      issues.add(path, 'a condition has either "segment" or "attribute"/"op"/"values", not both');
      return undefined;
    }
    const seg = raw['segment'];
    if (typeof seg !== 'string') {
      issues.add(at(path, 'segment'), 'must be a string');
      return undefined;
    }
    if (!segmentKeys.has(seg)) {
      issues.add(at(path, 'segment'), `unknown segment "${seg}"`);
      return undefined;
    }
    return negate ? { segment: seg, negate } : { segment: seg };
  }
  const attribute = raw['attribute'];
  let ok = true;
  if (typeof attribute !== 'string' || attribute.length === 0 || attribute.length > 256) {
    issues.add(at(path, 'attribute'), 'is required and must be a non-empty string of at most 256 characters');
    ok = false;
  }
  const op = raw['op'];
  if (typeof op !== 'string' || !OPERATOR_SET.has(op)) {
    issues.add(at(path, 'op'), `unknown operator ${JSON.stringify(op)}; expected one of ${OPERATORS.join(', ')}`);
    return undefined;
  }
  const values = raw['values'];
  let cleaned: AttributeScalar[] | undefined;
  if (op === 'exists') {
    if (values !== undefined && !(Array.isArray(values) && values.length === 0)) {
      issues.add(at(path, 'values'), '"exists" takes no values');
      ok = false;
    }
  } else if (!Array.isArray(values) || values.length === 0) {
    issues.add(at(path, 'values'), `must be a non-empty array for "${op}"`);
    ok = false;
  } else if (values.length > LIMITS.valuesPerCondition) {
    issues.add(at(path, 'values'), `must have at most ${LIMITS.valuesPerCondition} values`);
    ok = false;
  } else if (op === 'matches' && values.length > LIMITS.patternsPerCondition) {
    // Each pattern is an automaton evaluated in turn: keep one condition's work and memory bounded.
    issues.add(at(path, 'values'), `must have at most ${LIMITS.patternsPerCondition} patterns for "matches"`);
    ok = false;
  } else {
    cleaned = [];
    values.forEach((v, i) => {
      const problem = valueProblem(op as Operator, v);
      if (problem !== undefined) {
        issues.add(at(at(path, 'values'), i), problem);
        ok = false;
      } else cleaned!.push(v as AttributeScalar);
    });
  }
  if (!ok) return undefined;
  const c: AttributeCondition = { attribute: attribute as string, op: op as Operator };
  if (cleaned !== undefined) c.values = cleaned;
  if (negate) c.negate = true;
  return c;
}

function validateConditions(raw: unknown, path: string, issues: Issues, segmentKeys: ReadonlySet<string> | null): Condition[] {
  if (!Array.isArray(raw)) {
    issues.add(path, `must be an array, got ${describeType(raw)}`);
    return [];
  }
  if (raw.length > LIMITS.conditionsPerRule) issues.add(path, `must have at most ${LIMITS.conditionsPerRule} conditions`);
  const out: Condition[] = [];
  raw.forEach((c, i) => {
    const v = validateCondition(c, at(path, i), issues, segmentKeys);
    if (v !== undefined) out.push(v);
  });
  return out;
}

function percentOk(p: number): boolean {
  const scaled = p * 1000;
  return Math.abs(scaled - Math.round(scaled)) < 1e-6;
}

function validateServe(raw: unknown, path: string, issues: Issues, variantKeys: ReadonlySet<string>): Serve | undefined {
  if (!isRecord(raw)) {
    issues.add(path, `must be an object with "variant" or "rollout", got ${describeType(raw)}`);
    return undefined;
  }
  const hasVariant = 'variant' in raw;
  const hasRollout = 'rollout' in raw;
  if (hasVariant === hasRollout) {
    issues.add(path, 'must have exactly one of "variant" or "rollout"');
    return undefined;
  }
  if (hasVariant) {
    const v = raw['variant'];
    if (typeof v !== 'string' || !variantKeys.has(v)) {
      issues.add(at(path, 'variant'), `unknown variant ${JSON.stringify(v)}`);
      return undefined;
    }
    return { variant: v };
  }
  const rp = at(path, 'rollout');
  const r = raw['rollout'];
  if (!isRecord(r)) {
    issues.add(rp, `must be an object, got ${describeType(r)}`);
    return undefined;
  }
  const before = issues.list.length;
  const weightsRaw = r['weights'];
  const weights: Weight[] = [];
  const wp = at(rp, 'weights');
  if (!Array.isArray(weightsRaw) || weightsRaw.length === 0) {
    issues.add(wp, 'must be a non-empty array of { variant, percent }');
  } else {
    let thousandths = 0;
    const seen = new Set<string>();
    weightsRaw.forEach((w, i) => {
      const p = at(wp, i);
      if (!isRecord(w)) {
        issues.add(p, `must be an object, got ${describeType(w)}`);
        return;
      }
      const v = w['variant'];
      if (typeof v !== 'string' || !variantKeys.has(v)) issues.add(at(p, 'variant'), `unknown variant ${JSON.stringify(v)}`);
      else if (seen.has(v)) issues.add(at(p, 'variant'), `variant "${v}" is listed twice`);
      else seen.add(v);
      const pct = w['percent'];
      if (typeof pct !== 'number' || !Number.isFinite(pct) || pct < 0 || pct > 100) {
        issues.add(at(p, 'percent'), 'must be a number from 0 to 100');
      } else if (!percentOk(pct)) {
        issues.add(at(p, 'percent'), 'must have at most three decimals');
      } else thousandths += Math.round(pct * 1000);
      if (typeof v === 'string' && typeof pct === 'number') weights.push({ variant: v, percent: pct });
    });
    if (issues.list.length === before && thousandths !== 100_000) {
      issues.add(wp, `percents must sum to 100, got ${thousandths / 1000}`);
    }
  }
  const bucketBy = optionalString(r, 'bucketBy', rp, issues, 256);
  if (bucketBy === '') issues.add(at(rp, 'bucketBy'), 'must not be empty');
  const salt = optionalString(r, 'salt', rp, issues, 256);
  if (issues.list.length > before) return undefined;
  const rollout: Rollout = { weights };
  if (bucketBy !== undefined) rollout.bucketBy = bucketBy;
  if (salt !== undefined) rollout.salt = salt;
  return { rollout };
}

/**
 * Validates a flag's state in one environment against the flag's definition and the known segment keys: variants
 * referenced exist, targets do not list a key twice, rule ids are unique, conditions use known operators with
 * values of the right type (valid regular expressions, semantic versions, dates), segments exist, rollouts sum to
 * 100 with at most three decimals per percent. The input's `version`, if any, is ignored.
 */
export function validateFlagState(
  input: unknown,
  flag: FlagDefinition,
  segmentKeys: ReadonlySet<string>,
  flags?: PrerequisiteFlags,
): ValidationResult<Omit<FlagState, 'version'>> {
  const issues = new Issues();
  if (!isRecord(input)) {
    issues.add('', `must be an object, got ${describeType(input)}`);
    return { ok: false, issues: issues.list };
  }
  const variantKeys = new Set(flag.variants.map((v) => v.key));
  const enabled = input['enabled'];
  if (typeof enabled !== 'boolean') issues.add('/enabled', 'is required and must be a boolean');
  const offVariant = input['offVariant'];
  if (typeof offVariant !== 'string' || !variantKeys.has(offVariant)) {
    issues.add('/offVariant', `must name a variant of the flag (${[...variantKeys].join(', ')}), got ${JSON.stringify(offVariant)}`);
  }

  const prerequisites = validatePrerequisites(input['prerequisites'], flag.key, issues, flags);

  const targets: Target[] = [];
  const rawTargets = input['targets'] ?? [];
  if (!Array.isArray(rawTargets)) issues.add('/targets', `must be an array, got ${describeType(rawTargets)}`);
  else {
    const keyOwner = new Map<string, number>();
    let total = 0;
    rawTargets.forEach((t, i) => {
      const p = at('/targets', i);
      if (!isRecord(t)) {
        issues.add(p, `must be an object, got ${describeType(t)}`);
        return;
      }
      const v = t['variant'];
      if (typeof v !== 'string' || !variantKeys.has(v)) issues.add(at(p, 'variant'), `unknown variant ${JSON.stringify(v)}`);
      const keys = stringArray(t['keys'], at(p, 'keys'), issues, LIMITS.targetKeys, 'context keys');
      total += keys.length;
      keys.forEach((k, j) => {
        const owner = keyOwner.get(k);
        if (owner !== undefined) issues.add(at(at(p, 'keys'), j), `key "${k}" is already targeted by /targets/${owner}`);
        else keyOwner.set(k, i);
      });
      if (typeof v === 'string') targets.push({ variant: v, keys });
    });
    if (total > LIMITS.targetKeys) issues.add('/targets', `must target at most ${LIMITS.targetKeys} keys in all`);
  }

  const rules: Rule[] = [];
  eachRule(input['rules'], issues, true, (r, p, id) => {
    const description = optionalString(r, 'description', p, issues);
    const conditions = validateConditions(r['conditions'], at(p, 'conditions'), issues, segmentKeys);
    const serve = validateServe(r['serve'], at(p, 'serve'), issues, variantKeys);
    if (typeof id === 'string' && serve !== undefined) {
      const rule: Rule = { id, conditions, serve };
      if (description !== undefined) rule.description = description;
      rules.push(rule);
    }
  });
  const fallthrough = validateServe(input['fallthrough'], '/fallthrough', issues, variantKeys);
  if (issues.list.length > 0) return { ok: false, issues: issues.list };
  const value: Omit<FlagState, 'version'> = {
    enabled: enabled as boolean,
    offVariant: offVariant as string,
    targets,
    rules,
    fallthrough: fallthrough!,
  };
  // Absent and empty mean the same; stored and streamed states carry the field only when it says something.
  if (prerequisites.length > 0) value.prerequisites = prerequisites;
  return { ok: true, value };
}

/**
 * `prerequisites` (CONTRACT §12): each `{ flag, variants }` names another flag (once) and a non-empty list of its
 * variants. With `flags` (the server, on write), the flag must exist in the environment, the variants must be its
 * own, and requiring it must not close a cycle (the issue names the path).
 */
function validatePrerequisites(raw: unknown, self: string, issues: Issues, flags: PrerequisiteFlags | undefined): Prerequisite[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) {
    issues.add('/prerequisites', `must be an array, got ${describeType(raw)}`);
    return [];
  }
  if (raw.length > LIMITS.prerequisites) issues.add('/prerequisites', `must have at most ${LIMITS.prerequisites} entries`);
  const out: Prerequisite[] = [];
  const seen = new Map<string, number>();
  raw.forEach((p, i) => {
    const path = at('/prerequisites', i);
    if (!isRecord(p)) {
      issues.add(path, `must be an object { flag, variants }, got ${describeType(p)}`);
      return;
    }
    for (const k of Object.keys(p)) if (k !== 'flag' && k !== 'variants') issues.add(at(path, k), 'is not a known property');
    const key = p['flag'];
    const fp = at(path, 'flag');
    let keyOk = false;
    if (typeof key !== 'string' || !KEY_PATTERN.test(key)) issues.add(fp, `is required and must match ${KEY_PATTERN.source}`);
    else if (key === self) issues.add(fp, 'a flag cannot require itself');
    else if (seen.has(key)) issues.add(fp, `duplicates /prerequisites/${seen.get(key)}`);
    else keyOk = true;
    if (typeof key === 'string') seen.set(key, i);
    const vp = at(path, 'variants');
    const variants = stringArray(p['variants'], vp, issues, LIMITS.variants, 'variant keys');
    if (Array.isArray(p['variants']) && p['variants'].length === 0) issues.add(vp, 'must list at least one variant');
    if (new Set(variants).size !== variants.length) issues.add(vp, 'must not list a variant twice');
    if (keyOk && flags !== undefined) {
      const target = flags.get(key as string);
      if (target === undefined) issues.add(fp, `unknown flag "${key as string}" (no live flag of that key in this environment)`);
      else {
        variants.forEach((v, j) => {
          if (!target.variants.includes(v))
            issues.add(at(vp, j), `"${v}" is not a variant of flag "${key as string}" (${target.variants.join(', ')})`);
        });
        const cycle = pathTo(key as string, self, flags);
        if (cycle !== null) issues.add(fp, `would create a cycle: ${[self, ...cycle].join(' → ')}`);
      }
    }
    if (keyOk) out.push({ flag: key as string, variants });
  });
  return out;
}

/** A path of prerequisite edges from `from` to `to` in `flags` (`[from, …, to]`), or null; visits each flag once. */
function pathTo(from: string, to: string, flags: PrerequisiteFlags): string[] | null {
  const parent = new Map<string, string | null>([[from, null]]);
  const queue = [from];
  for (let q = 0; q < queue.length; q++) {
    const k = queue[q]!;
    if (k === to) {
      const path: string[] = [];
      for (let c: string | null = k; c !== null; c = parent.get(c)!) path.unshift(c);
      return path;
    }
    for (const next of flags.get(k)?.prerequisites ?? []) {
      if (!parent.has(next)) {
        parent.set(next, k);
        queue.push(next);
      }
    }
  }
  return null;
}

/**
 * Walks the `rules` array shared by flag states and segments: the array itself, its length, each entry being an object,
 * and rule ids (a valid name, unique; required for flag rules, optional for segment rules). `visit` gets each object
 * entry, its path, and its raw id.
 */
function eachRule(
  raw: unknown,
  issues: Issues,
  idRequired: boolean,
  visit: (rule: Record<string, unknown>, path: string, id: unknown) => void,
): void {
  const rawRules = raw ?? [];
  if (!Array.isArray(rawRules)) {
    issues.add('/rules', `must be an array, got ${describeType(rawRules)}`);
    return;
  }
  if (rawRules.length > LIMITS.rules) issues.add('/rules', `must have at most ${LIMITS.rules} rules`);
  const ids = new Map<string, number>();
  rawRules.forEach((r, i) => {
    const p = at('/rules', i);
    if (!isRecord(r)) {
      issues.add(p, `must be an object, got ${describeType(r)}`);
      return;
    }
    const id = r['id'];
    if (id !== undefined || idRequired) {
      if (typeof id !== 'string' || !NAME_PATTERN.test(id)) {
        issues.add(at(p, 'id'), `${idRequired ? 'is required and must' : 'must'} match ${NAME_PATTERN.source}`);
      } else if (ids.has(id)) issues.add(at(p, 'id'), `duplicates the id of /rules/${ids.get(id)}`);
      else ids.set(id, i);
    }
    visit(r, p, id);
  });
}

/**
 * Validates a segment: key pattern, included and excluded context keys, and rules of attribute conditions
 * (a segment rule may not reference a segment: membership stays one level deep, so it cannot cycle).
 */
export function validateSegment(input: unknown): ValidationResult<Segment> {
  const issues = new Issues();
  if (!isRecord(input)) {
    issues.add('', `must be an object, got ${describeType(input)}`);
    return { ok: false, issues: issues.list };
  }
  const key = input['key'];
  if (typeof key !== 'string') issues.add('/key', 'is required and must be a string');
  else if (!KEY_PATTERN.test(key)) issues.add('/key', `must match ${KEY_PATTERN.source}`);
  const description = optionalString(input, 'description', '', issues);
  const included = input['included'] === undefined ? [] : stringArray(input['included'], '/included', issues, LIMITS.segmentKeys, 'context keys');
  const excluded = input['excluded'] === undefined ? [] : stringArray(input['excluded'], '/excluded', issues, LIMITS.segmentKeys, 'context keys');
  const rules: SegmentRule[] = [];
  eachRule(input['rules'], issues, false, (r, p, id) => {
    const conditions = validateConditions(r['conditions'], at(p, 'conditions'), issues, null) as AttributeCondition[];
    rules.push(typeof id === 'string' ? { id, conditions } : { conditions });
  });
  if (issues.list.length > 0) return { ok: false, issues: issues.list };
  const value: Segment = { key: key as string, included, excluded, rules };
  if (description !== undefined) value.description = description;
  return { ok: true, value };
}
