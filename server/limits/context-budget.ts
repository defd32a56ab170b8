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

const pointer = (name: string) => `/${name.replaceAll('~', '~0').replaceAll('/', '~1')}`;

/**
 * The first limit `context` breaks, or null when it is within the budget. Only sizes are checked here: types are the
 * caller's (the OpenAPI schema, or OFREP's own context conversion).
 */
export function contextBudgetProblem(context: unknown): BudgetProblem | null {
  if (typeof context !== 'object' || context === null || Array.isArray(context)) return null;
  const L = CONTEXT_LIMITS;
  let attributes = 0;
  let bytes = 0;
  const addString = (s: string, path: string): BudgetProblem | null => {
    if (s.length > L.stringLength)
      return { limit: 'stringLength', path, message: `a string of ${s.length} characters; at most ${L.stringLength} (limit stringLength)` };
    bytes += Buffer.byteLength(s, 'utf8');
    return null;
  };
  for (const name in context) {
    if (!Object.hasOwn(context, name)) continue;
    const path = pointer(name);
    if (++attributes > L.attributes) return { limit: 'attributes', path, message: `more than ${L.attributes} attributes (limit attributes)` };
    if (name.length > L.nameLength)
      return { limit: 'nameLength', path, message: `an attribute name of ${name.length} characters; at most ${L.nameLength} (limit nameLength)` };
    bytes += Buffer.byteLength(name, 'utf8');
    const v = (context as Record<string, unknown>)[name];
    if (typeof v === 'string') {
      const p = addString(v, path);
      if (p) return p;
    } else if (Array.isArray(v)) {
      if (v.length > L.arrayItems)
        return { limit: 'arrayItems', path, message: `an array of ${v.length} elements; at most ${L.arrayItems} (limit arrayItems)` };
      for (let i = 0; i < v.length; i++) {
        const e: unknown = v[i];
        if (typeof e !== 'string') continue;
        const p = addString(e, `${path}/${i}`);
        if (p) return p;
      }
    }
    if (bytes > L.totalStringBytes) {
      return { limit: 'totalStringBytes', path, message: `the context's strings exceed ${L.totalStringBytes} bytes in all (limit totalStringBytes)` };
    }
  }
  return null;
}

/**
 * The `x-aviary-context-budget: true` schema keyword (registered by server/openapi/validation.ts): runs
 * {@link contextBudgetProblem} on the value it annotates, failing with the limit's message at its path.
 */
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
