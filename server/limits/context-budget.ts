/**
 * The evaluation budget of a context an SDK key sends for server-side evaluation (`POST /sdk/v1/evaluate` and OFREP,
 * CONTRACT §16). The work of evaluating a context is (bytes the rules look at) × (cost per byte of the rules); flag
 * authors bound the second (the validator refuses patterns whose program is large, sdk/core/operators/
 * pattern-messages.ts), this bounds the first, which anyone holding an SDK key chooses. One function for both routes:
 * `POST /sdk/v1/evaluate` runs it as the `x-aviary-context-budget` keyword of its OpenAPI schema (so the route and
 * its fast path both do), OFREP calls it directly.
 */
import { Buffer } from 'node:buffer';
import type { FuncKeywordDefinition } from 'ajv';

/** The limits (docs/operations.md, "SDK-key limits"). */
export const CONTEXT_LIMITS = {
  /** Attributes in one context. */
  attributes: 100,
  /** Characters in an attribute name. */
  nameLength: 256,
  /** Elements in an array attribute. */
  arrayItems: 100,
  /** Characters in one string value (array elements included). `matches` never looks past 4,096 anyway. */
  stringLength: 1024,
  /** UTF-8 bytes of all string values and attribute names together. */
  totalStringBytes: 8192,
} as const;

/** Which limit a context breaks and where (a JSON pointer under the context). Both routes answer it with 400. */
export interface BudgetProblem {
  limit: keyof typeof CONTEXT_LIMITS;
  path: string;
  message: string;
}

const pointer = (name: string, index?: number) => `/${name.replaceAll('~', '~0').replaceAll('/', '~1')}${index === undefined ? '' : `/${index}`}`;

/** A string over the per-string limit, as a problem. */
function tooLong(s: string, name: string, index?: number): BudgetProblem {
  return {
    limit: 'stringLength',
    path: pointer(name, index),
    message: `a string of ${s.length} characters; at most ${CONTEXT_LIMITS.stringLength} (limit stringLength)`,
  };
}

/**
 * The first part of a context past its evaluation budget, or null. Runs on every evaluation request, so the common
 * case does no allocation: paths are built only for a problem, and UTF-8 is counted exactly only when the cheap bound
 * (three bytes per UTF-16 unit, never less than the real size) passes the total.
 */
export function contextBudgetProblem(context: unknown): BudgetProblem | null {
  if (typeof context !== 'object' || context === null || Array.isArray(context)) return null;
  const L = CONTEXT_LIMITS;
  const record = context as Record<string, unknown>;
  let attributes = 0;
  let bound = 0;
  for (const name in record) {
    if (!Object.hasOwn(record, name)) continue;
    if (++attributes > L.attributes)
      return { limit: 'attributes', path: pointer(name), message: `more than ${L.attributes} attributes (limit attributes)` };
    if (name.length > L.nameLength) {
      return {
        limit: 'nameLength',
        path: pointer(name),
        message: `an attribute name of ${name.length} characters; at most ${L.nameLength} (limit nameLength)`,
      };
    }
    bound += name.length;
    const v = record[name];
    if (typeof v === 'string') {
      if (v.length > L.stringLength) return tooLong(v, name);
      bound += v.length;
    } else if (Array.isArray(v)) {
      if (v.length > L.arrayItems)
        return { limit: 'arrayItems', path: pointer(name), message: `an array of ${v.length} elements; at most ${L.arrayItems} (limit arrayItems)` };
      for (let i = 0; i < v.length; i++) {
        const e: unknown = v[i];
        if (typeof e !== 'string') continue;
        if (e.length > L.stringLength) return tooLong(e, name, i);
        bound += e.length;
      }
    }
  }
  return bound * 3 > L.totalStringBytes ? totalBytesProblem(record) : null;
}

/** The exact count, for a context whose bound passed the total: where the UTF-8 bytes of its strings pass it, or null. */
function totalBytesProblem(record: Record<string, unknown>): BudgetProblem | null {
  const L = CONTEXT_LIMITS;
  let bytes = 0;
  for (const name in record) {
    if (!Object.hasOwn(record, name)) continue;
    bytes += Buffer.byteLength(name, 'utf8');
    const v = record[name];
    if (typeof v === 'string') bytes += Buffer.byteLength(v, 'utf8');
    else if (Array.isArray(v)) for (const e of v) if (typeof e === 'string') bytes += Buffer.byteLength(e, 'utf8');
    if (bytes > L.totalStringBytes) {
      return {
        limit: 'totalStringBytes',
        path: pointer(name),
        message: `the context's strings exceed ${L.totalStringBytes} bytes in all (limit totalStringBytes)`,
      };
    }
  }
  return null;
}

export const contextBudgetKeyword: FuncKeywordDefinition = {
  keyword: 'x-aviary-context-budget',
  schemaType: 'boolean',
  errors: true,
  validate: function budget(this: unknown, enabled: boolean, data: unknown, _schema?: unknown, ctx?: { instancePath: string }) {
    const self = budget as typeof budget & { errors?: unknown[] | null };
    self.errors = null;
    if (!enabled) return true;
    const p = contextBudgetProblem(data);
    if (!p) return true;
    self.errors = [
      { keyword: 'x-aviary-context-budget', instancePath: `${ctx?.instancePath ?? ''}${p.path}`, message: p.message, params: { limit: p.limit } },
    ];
    return false;
  },
};
