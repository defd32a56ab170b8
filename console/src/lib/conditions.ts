/**
 * The condition editor's pure parts: each operator of CONTRACT §1 in words, the value types it takes, how a typed
 * chip becomes a value, and the attributes a flag already uses (the editor's suggestions).
 * Pure: no DOM; unit-tested in test/console/conditions.test.ts. What is valid is the shared core's validator's say
 * (the editor shows its messages); these helpers only turn what was typed into a value of the chosen type.
 */
import type { Condition, Rule } from './types.js';

export type AttributeCondition = Extract<Condition, { attribute: string }>;
export type Operator = AttributeCondition['op'];

export type Scalar = string | number | boolean;

/** Every operator (CONTRACT §1, in its order) with its meaning in words. */
export const OPERATOR_LABELS: ReadonlyArray<readonly [Operator, string]> = [
  ['in', 'is one of'],
  ['startsWith', 'starts with'],
  ['endsWith', 'ends with'],
  ['contains', 'contains'],
  ['matches', 'matches (regular expression)'],
  ['lt', '< (number)'],
  ['lte', '≤ (number)'],
  ['gt', '> (number)'],
  ['gte', '≥ (number)'],
  ['semverEq', 'semver ='],
  ['semverLt', 'semver <'],
  ['semverGt', 'semver >'],
  ['before', 'before (date)'],
  ['after', 'after (date)'],
  ['exists', 'exists'],
];

/** What a chip's text becomes. */
export type ValueType = 'string' | 'number' | 'boolean' | 'date' | 'epoch' | 'version';

/** The value types an operator takes, the first being the default (`[]` for `exists`: no values). */
export function valueTypes(op: Operator): ValueType[] {
  switch (op) {
    case 'in':
      return ['string', 'number', 'boolean'];
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte':
      return ['number'];
    case 'semverEq':
    case 'semverLt':
    case 'semverGt':
      return ['version'];
    case 'before':
    case 'after':
      return ['date', 'epoch'];
    case 'exists':
      return [];
    default:
      return ['string'];
  }
}

export const VALUE_TYPE_LABELS: Record<ValueType, string> = {
  string: 'text',
  number: 'number',
  boolean: 'true/false',
  date: 'ISO date',
  epoch: 'epoch ms',
  version: 'version',
};

/** The type a present value has in the editor (a number under before/after is epoch milliseconds). */
export function typeOf(value: Scalar, op: Operator): ValueType {
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return op === 'before' || op === 'after' ? 'epoch' : 'number';
  return op === 'before' || op === 'after' ? 'date' : op.startsWith('semver') ? 'version' : 'string';
}

/**
 * A chip's text as a value of `type`. Numbers and booleans that do not parse are refused here (they would otherwise
 * pass as strings); strings, dates and versions are kept as typed, and the validator says whether they are valid.
 */
export function parseValue(text: string, type: ValueType): { value: Scalar } | { error: string } {
  const t = type === 'string' ? text : text.trim();
  if (t === '') return { error: 'is empty' };
  if (type === 'number' || type === 'epoch') {
    const n = Number(t);
    return Number.isFinite(n) ? { value: n } : { error: `"${t}" is not a number` };
  }
  if (type === 'boolean') return t === 'true' || t === 'false' ? { value: t === 'true' } : { error: `"${t}" is not true or false` };
  return { value: t };
}

/** Turns a condition to another operator: values of a type the new one takes are kept; `exists` has none. */
export function withOperator(c: AttributeCondition, op: Operator): AttributeCondition {
  const types = valueTypes(op);
  const values = (c.values ?? []).filter((v) => types.includes(typeOf(v, op)));
  const { values: _v, ...rest } = c;
  return op === 'exists' ? { ...rest, op } : { ...rest, op, values };
}

/** The attributes the rules' conditions name, sorted and unique (suggestions for another condition). */
export function attributesUsed(rules: ReadonlyArray<Pick<Rule, 'conditions'>>): string[] {
  const names = new Set<string>();
  for (const r of rules) for (const c of r.conditions) if ('attribute' in c && c.attribute) names.add(c.attribute);
  return [...names].sort();
}

/** Shows a value as a chip: strings as typed, other types marked so `"3"` and `3` do not look alike. */
export function chipText(value: Scalar, op: Operator): string {
  const type = typeOf(value, op);
  return type === 'number' || type === 'boolean' || type === 'epoch' ? `${String(value)} (${VALUE_TYPE_LABELS[type]})` : (value as string);
}

/** A sample attribute's values with their shares, as the preview spreads them over its synthetic contexts. */
export interface Share {
  value: Scalar;
  percent: number;
}

/**
 * Parses "pro 30%, free 70%" (comma-separated; the value then its share): values of `type`, shares from 0 to 100. A
 * value without a share takes what the shares before it leave of 100%.
 */
export function parseShares(text: string, type: 'string' | 'number' | 'boolean', taken = 0): { shares: Share[] } | { error: string } {
  const shares: Share[] = [];
  let sum = taken;
  for (const part of text.split(',')) {
    if (part.trim() === '') continue;
    const m = /^\s*(.*?)\s+(\d+(?:\.\d+)?)\s*%\s*$/.exec(part);
    const raw = m ? m[1]! : part.trim();
    const percent = m ? Number(m[2]) : Math.max(0, 100 - sum);
    const parsed = parseValue(raw, type);
    if ('error' in parsed) return parsed;
    if (percent > 100) return { error: `${percent}% is more than 100%` };
    shares.push({ value: parsed.value, percent });
    sum += percent;
  }
  if (sum > 100.0005) return { error: `the shares total ${Math.round(sum * 1000) / 1000}%, more than 100%` };
  return { shares };
}
