/**
 * The OpenAPI document (`openapi/openapi.yaml`, the source of truth) as the server uses it: served as
 * `/openapi.json`, and the source of the JSON schemas that routes validate request bodies, query strings and path
 * parameters with, so the spec and the validation cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/** Where the spec lives (repo root `openapi/`). */
export const SPEC_PATH = fileURLToPath(new URL('../../openapi/openapi.yaml', import.meta.url));

/** A JSON schema or an OpenAPI object: plain JSON. */
export type JsonObject = { [key: string]: unknown };

/** The HTTP methods an OpenAPI path item can hold operations for. */
export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** One operation of the spec, located. */
export interface SpecOperation {
  operationId: string;
  method: HttpMethod;
  /** The OpenAPI path template (`/api/v1/flags/{key}`). */
  path: string;
  /** The same path in fastify's syntax (`/api/v1/flags/:key`). */
  routePath: string;
  operation: JsonObject;
}

/** The parsed spec plus indexes over it. */
export interface LoadedSpec {
  document: JsonObject;
  /** `JSON.stringify(document)`, computed once: `/openapi.json` serves this string. */
  json: string;
  operations: SpecOperation[];
  byId: Map<string, SpecOperation>;
}

let cached: LoadedSpec | undefined;

/** Loads (once per process) and indexes the spec. Throws if it is unreadable or an operationId repeats. */
export function loadSpec(path: string = SPEC_PATH): LoadedSpec {
  if (cached && path === SPEC_PATH) return cached;
  const document = parse(readFileSync(path, 'utf8')) as JsonObject;
  const operations: SpecOperation[] = [];
  const byId = new Map<string, SpecOperation>();
  const paths = (document.paths ?? {}) as Record<string, JsonObject>;
  for (const [p, item] of Object.entries(paths)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method] as JsonObject | undefined;
      if (!operation) continue;
      const operationId = operation.operationId;
      if (typeof operationId !== 'string') throw new Error(`${method.toUpperCase()} ${p} has no operationId`);
      if (byId.has(operationId)) throw new Error(`operationId ${operationId} is used twice`);
      const op: SpecOperation = { operationId, method, path: p, routePath: toRoutePath(p), operation };
      operations.push(op);
      byId.set(operationId, op);
    }
  }
  const loaded: LoadedSpec = { document, json: JSON.stringify(document), operations, byId };
  if (path === SPEC_PATH) cached = loaded;
  return loaded;
}

/** `/api/v1/flags/{key}` → `/api/v1/flags/:key`. */
export function toRoutePath(openapiPath: string): string {
  return openapiPath.replace(/\{([^}]+)\}/g, ':$1');
}

/** The operation with this id; throws (at route registration, so at boot) if the spec has none. */
export function specOperation(operationId: string, spec: LoadedSpec = loadSpec()): SpecOperation {
  const op = spec.byId.get(operationId);
  if (!op) throw new Error(`The OpenAPI spec has no operation ${operationId}`);
  return op;
}

/** The operation for a method and path (either syntax), or undefined. */
export function findOperation(method: string, path: string, spec: LoadedSpec = loadSpec()): SpecOperation | undefined {
  const m = method.toLowerCase();
  const routePath = toRoutePath(path);
  return spec.operations.find((o) => o.method === m && o.routePath === routePath);
}

// Keywords OpenAPI adds to JSON Schema that a validator must not see (ajv rejects unknown keywords in strict mode,
// and `example` is a single value where JSON Schema's `examples` is an array).
const OPENAPI_ONLY_KEYWORDS = new Set(['example', 'xml', 'externalDocs', 'discriminator']);
// Keywords whose value is a map from names to schemas: the names are data, not keywords, so never strip them.
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']);
// Keywords whose value is a schema or an array of schemas.
const SCHEMA_VALUES = new Set([
  'items',
  'additionalProperties',
  'propertyNames',
  'not',
  'contains',
  'if',
  'then',
  'else',
  'unevaluatedItems',
  'unevaluatedProperties',
  'allOf',
  'anyOf',
  'oneOf',
  'prefixItems',
  'contentSchema',
]);

/**
 * A self-contained JSON schema: every `$ref` into `#/components/...` replaced by the (resolved) target, siblings of a
 * `$ref` kept (OpenAPI 3.1 allows `description` next to `$ref`), and OpenAPI-only keywords removed.
 */
export function resolveSchema(schema: unknown, spec: LoadedSpec = loadSpec(), seen: string[] = []): unknown {
  if (Array.isArray(schema)) return schema.map((s) => resolveSchema(s, spec, seen));
  if (schema === null || typeof schema !== 'object') return schema;
  const src = schema as JsonObject;
  let out: JsonObject = {};
  if (typeof src.$ref === 'string') {
    const ref = src.$ref;
    if (seen.includes(ref)) throw new Error(`Recursive schema ${[...seen, ref].join(' → ')} cannot be inlined`);
    const target = resolvePointer(spec.document, ref);
    out = { ...(resolveSchema(target, spec, [...seen, ref]) as JsonObject) };
  }
  for (const [k, v] of Object.entries(src)) {
    if (k === '$ref' || OPENAPI_ONLY_KEYWORDS.has(k)) continue;
    if (k === 'oneOf' && Array.isArray(v)) {
      const branches = v.map((b) => resolveSchema(b, spec, seen) as JsonObject);
      const chain = discriminatedChain(branches);
      if (chain) Object.assign(out, chain);
      else out.oneOf = branches;
      continue;
    }
    if (SCHEMA_MAPS.has(k) && v && typeof v === 'object') {
      out[k] = Object.fromEntries(Object.entries(v as JsonObject).map(([name, s]) => [name, resolveSchema(s, spec, seen)]));
    } else if (SCHEMA_VALUES.has(k)) {
      out[k] = resolveSchema(v, spec, seen);
    } else {
      out[k] = v;
    }
  }
  return out;
}

/**
 * A `oneOf` of object schemas that each require a property no other branch requires (`{ variant }` or
 * `{ rollout }`; an attribute condition or `{ segment }`) becomes an if/then/else chain on those properties. Same
 * accepted documents, but a bad value is reported against the one branch it was meant to be, not as a failure of
 * every branch ("must have required property 'segment'" for an attribute condition with a bad `op`).
 */
function discriminatedChain(branches: JsonObject[]): JsonObject | undefined {
  if (branches.length < 2) return undefined;
  const requiredOf = (b: JsonObject) => (Array.isArray(b.required) ? (b.required as string[]) : []);
  const keys: string[] = [];
  for (const [i, b] of branches.entries()) {
    if (b.type !== 'object') return undefined;
    const others = new Set(branches.flatMap((o, j) => (j === i ? [] : requiredOf(o))));
    const own = requiredOf(b).find((k) => !others.has(k));
    if (!own) return undefined;
    keys.push(own);
  }
  let chain: JsonObject = branches[branches.length - 1]!;
  for (let i = branches.length - 2; i >= 0; i--) {
    // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then/else, not a thenable
    chain = { if: { type: 'object', required: [keys[i]] }, then: branches[i], else: chain };
  }
  return chain;
}

function resolvePointer(document: JsonObject, ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`Only local $refs are supported, got ${ref}`);
  let node: unknown = document;
  for (const raw of ref.slice(2).split('/')) {
    const part = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (node === null || typeof node !== 'object' || !(part in (node as JsonObject))) {
      throw new Error(`Unresolvable $ref ${ref}`);
    }
    node = (node as JsonObject)[part];
  }
  return node;
}

/** An OpenAPI object that may be a `$ref` (a response, a request body), followed to its target. */
function deref(node: unknown, spec: LoadedSpec = loadSpec()): JsonObject | undefined {
  let cur = node;
  for (let i = 0; i < 10 && cur && typeof cur === 'object' && typeof (cur as JsonObject).$ref === 'string'; i++) {
    cur = resolvePointer(spec.document, (cur as JsonObject).$ref as string);
  }
  return cur && typeof cur === 'object' ? (cur as JsonObject) : undefined;
}

const bodyCache = new Map<string, JsonObject>();

/**
 * The request-body JSON schema of an operation (its `application/json` content), resolved and ready for ajv.
 * Route plugins use it as `schema: { body: bodySchema('createFlag') }`. Throws if the operation has no JSON body,
 * so a typo fails at boot rather than leaving a route unvalidated.
 */
export function bodySchema(operationId: string): JsonObject {
  const hit = bodyCache.get(operationId);
  if (hit) return hit;
  const op = specOperation(operationId);
  const requestBody = deref(op.operation.requestBody);
  const content = requestBody?.content as Record<string, { schema?: unknown }> | undefined;
  const raw = content?.['application/json']?.schema;
  const schema = raw === undefined ? undefined : resolveSchema(raw);
  if (!schema) throw new Error(`Operation ${operationId} has no application/json request body in the spec`);
  bodyCache.set(operationId, schema as JsonObject);
  return schema as JsonObject;
}

/** The parameters of an operation: the path item's, overridden by the operation's own (same name and location). */
function parametersOf(operationId: string, spec: LoadedSpec = loadSpec()): JsonObject[] {
  const op = specOperation(operationId, spec);
  const item = (spec.document.paths as Record<string, JsonObject>)[op.path] ?? {};
  const byKey = new Map<string, JsonObject>();
  for (const raw of [...((item.parameters as unknown[]) ?? []), ...((op.operation.parameters as unknown[]) ?? [])]) {
    const p = deref(raw, spec);
    if (p) byKey.set(`${String(p.in)} ${String(p.name)}`, p);
  }
  return [...byKey.values()];
}

/** Where a parameter lives, as OpenAPI names it (`query`, `path`), and the request part fastify validates it in. */
export type ParameterLocation = 'query' | 'path';

const parameterCache = new Map<string, JsonObject | null>();

/**
 * The JSON schema of an operation's query string or path parameters: an object with one property per parameter
 * (its resolved schema, with the parameter's description), `required` from the parameters' `required`. Unknown
 * query parameters are let through (caches and proxies add their own); unknown path parameters cannot occur. Null
 * when the operation has no parameter there. Route plugins get it through `routeSchema()` (validation.ts).
 */
export function parametersSchema(operationId: string, location: ParameterLocation, spec: LoadedSpec = loadSpec()): JsonObject | null {
  const key = `${operationId} ${location}`;
  const hit = parameterCache.get(key);
  if (hit !== undefined && spec === loadSpec()) return hit;
  const properties: JsonObject = {};
  const required: string[] = [];
  for (const p of parametersOf(operationId, spec)) {
    if (p.in !== location || typeof p.name !== 'string') continue;
    const schema = resolveSchema(p.schema ?? {}, spec) as JsonObject;
    properties[p.name] = typeof p.description === 'string' && schema.description === undefined ? { ...schema, description: p.description } : schema;
    if (p.required === true) required.push(p.name);
  }
  const schema = Object.keys(properties).length === 0 ? null : { type: 'object', properties, ...(required.length ? { required } : {}) };
  if (spec === loadSpec()) parameterCache.set(key, schema);
  return schema;
}

/** Whether the operation takes a JSON request body. */
export function hasJsonBody(operationId: string): boolean {
  const content = deref(specOperation(operationId).operation.requestBody)?.content as Record<string, unknown> | undefined;
  return content?.['application/json'] !== undefined;
}

/** Whether the spec marks the operation's request body as required (`POST .../kill` takes an optional one). */
export function bodyRequired(operationId: string): boolean {
  return deref(specOperation(operationId).operation.requestBody)?.required === true;
}

/**
 * The JSON schema of one response of an operation, or undefined when that status has no JSON body
 * (204, 304, the websocket's 101). Used by tests to check real responses against the contract.
 */
export function responseSchema(operationId: string, status: number | string, spec: LoadedSpec = loadSpec()): JsonObject | undefined {
  const op = specOperation(operationId, spec);
  const responses = (op.operation.responses ?? {}) as JsonObject;
  const response = deref(responses[String(status)] ?? responses[`${String(status)[0]}XX`] ?? responses.default, spec);
  const content = response?.content as Record<string, { schema?: unknown }> | undefined;
  const schema = content?.['application/json']?.schema ?? content?.['application/problem+json']?.schema;
  return schema === undefined ? undefined : (resolveSchema(schema, spec) as JsonObject);
}

/** The resolved schema of a component (`components.schemas[name]`). */
export function componentSchema(name: string, spec: LoadedSpec = loadSpec()): JsonObject {
  return resolveSchema({ $ref: `#/components/schemas/${name}` }, spec) as JsonObject;
}
