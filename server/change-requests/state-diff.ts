/**
 * A structural diff of two JSON values as JSON-pointer paths (RFC 6901): what a change request would change in a
 * flag's current state, and what moved under a request whose base version is no longer current. Objects are compared
 * member by member, arrays element by element (a rule inserted at the top shows as every later rule replaced: the
 * order of rules is what evaluation follows, so that is also what changed).
 */

/** One difference: `add` (only in `after`), `remove` (only in `before`) or `replace`. */
export interface DiffEntry {
  op: 'add' | 'remove' | 'replace';
  path: string;
  before?: unknown;
  after?: unknown;
}

const pointerToken = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The differences from `before` to `after`, in document order; empty when they are equal. */
export function diffJson(before: unknown, after: unknown, path = ''): DiffEntry[] {
  if (Array.isArray(before) && Array.isArray(after)) {
    const out: DiffEntry[] = [];
    const n = Math.max(before.length, after.length);
    for (let i = 0; i < n; i++) {
      const p = `${path}/${i}`;
      if (i >= after.length) out.push({ op: 'remove', path: p, before: before[i] });
      else if (i >= before.length) out.push({ op: 'add', path: p, after: after[i] });
      else out.push(...diffJson(before[i], after[i], p));
    }
    return out;
  }
  if (isObject(before) && isObject(after)) {
    const out: DiffEntry[] = [];
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
      const p = `${path}/${pointerToken(key)}`;
      if (!(key in after)) out.push({ op: 'remove', path: p, before: before[key] });
      else if (!(key in before)) out.push({ op: 'add', path: p, after: after[key] });
      else out.push(...diffJson(before[key], after[key], p));
    }
    return out;
  }
  return Object.is(before, after) || JSON.stringify(before) === JSON.stringify(after) ? [] : [{ op: 'replace', path, before, after }];
}
