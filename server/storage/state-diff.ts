/**
 * The difference between two JSON values (two versions of a flag state), as the list of changed members: each a JSON
 * pointer (RFC 6901) with its value before and after, in the spirit of a JSON Patch (RFC 6902) `add`/`remove`/`replace`.
 * Objects are compared member by member, arrays element by element (by index: a rule inserted first shows as every
 * rule after it changed, which is what an evaluator sees too, since rules are evaluated in order), anything else by
 * value. Equal values give no change.
 */
import type { JsonValue } from '@aviary/sdk/core';

/** One changed member. `before` is absent for `add`, `after` for `remove`. */
export interface StateChange {
  op: 'add' | 'remove' | 'replace';
  /** A JSON pointer into the state (`/rules/0/serve/variant`, `/enabled`). */
  path: string;
  before?: JsonValue;
  after?: JsonValue;
}

const pointerToken = (token: string) => token.replace(/~/g, '~0').replace(/\//g, '~1');

const isObject = (v: JsonValue | undefined): v is { [k: string]: JsonValue } => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The changes that turn `before` into `after` (an empty list when they are equal). */
export function stateDiff(before: JsonValue, after: JsonValue): StateChange[] {
  const out: StateChange[] = [];
  walk(before, after, '', out);
  return out;
}

function walk(a: JsonValue | undefined, b: JsonValue | undefined, path: string, out: StateChange[]): void {
  if (a === undefined && b === undefined) return;
  if (a === undefined) {
    out.push({ op: 'add', path, after: b! });
    return;
  }
  if (b === undefined) {
    out.push({ op: 'remove', path, before: a });
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) walk(a[i], b[i], `${path}/${i}`, out);
    return;
  }
  if (isObject(a) && isObject(b)) {
    const keys = [...Object.keys(a), ...Object.keys(b).filter((k) => !Object.hasOwn(a, k))];
    for (const k of keys) walk(Object.hasOwn(a, k) ? a[k] : undefined, Object.hasOwn(b, k) ? b[k] : undefined, `${path}/${pointerToken(k)}`, out);
    return;
  }
  if (a !== b) out.push({ op: 'replace', path, before: a, after: b });
}
