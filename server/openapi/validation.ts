/**
 * Request validation with the spec's schemas: each route takes its body, query-string and path-parameter schemas from
 * its OpenAPI operation (`routeSchema('listFlags')`), so what the spec promises is what the server enforces.
 *
 * Two ajv instances, the way fastify itself splits them:
 * - bodies and path parameters: strict. No coercion (`"3"` stays a string and fails `type: integer`; the contract
 *   says values are never coerced), no removal of unknown properties, every error reported. Path parameters are
 *   strings on the wire and strings in the spec, so there is nothing to coerce.
 * - query strings: coercing. A query string is text, so `?limit=20` becomes the integer 20 and `?enabled=true` the
 *   boolean true before the schema checks them, and a repeated parameter (`?limit=1&limit=2`) fails a scalar
 *   schema instead of being silently picked from. Only the query string is coerced.
 *
 * Failures reach `problemErrorHandler` (server/errors.ts) as fastify validation errors and are rendered as
 * problem+json with a path per field (`/rules/0/op`, `/query/limit`, `/params/key`).
 */
import type { FastifyInstance, FastifySchema, FastifySchemaCompiler } from 'fastify';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { contextBudgetKeyword } from '../limits/context-budget.js';
import { bodyRequired, bodySchema, hasJsonBody, parametersSchema, type JsonObject } from './spec.js';

// ajv-formats is CommonJS with `exports.default`; under NodeNext the default import is the module object.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => Ajv2020;

/** Marks a body schema whose request body the spec declares optional (`POST .../kill` with no body). */
const OPTIONAL_BODY = 'x-aviary-optional-body';

function newAjv(coerce: boolean): Ajv2020 {
  const ajv = new Ajv2020({
    allErrors: true,
    // Unknown keywords (OpenAPI extensions such as `x-aviary-optional-body`) are annotations, not errors.
    strict: false,
    coerceTypes: coerce ? 'array' : false,
    removeAdditional: false,
    useDefaults: true,
    // Errors carry the failing schema: `explain` words an `anyOf` failure from its branches' titles.
    verbose: true,
  });
  addFormats(ajv);
  // `x-aviary-context-budget`: the evaluation budget of a context (server/limits/context-budget.ts).
  ajv.addKeyword(contextBudgetKeyword);
  return ajv;
}

// Every error is reported (allErrors), but a huge bad array must not make a huge problem document.
const MAX_ERRORS = 50;

/**
 * The errors worth reporting. An `if`/`then` failure ("must match \"then\" schema") only restates the errors of its
 * branch, listed anyway. An `anyOf` whose branches all have a `title` (the spec's `TimeParameter`: an RFC 3339
 * date-time or epoch milliseconds) is one error in words ("must be an RFC 3339 date-time or epoch milliseconds")
 * instead of one per branch plus "must match a schema in anyOf". An `enum` failure lists the allowed values.
 */
function explain(errors: ErrorObject[]): ErrorObject[] {
  const titled = errors.filter(
    (e) =>
      e.keyword === 'anyOf' &&
      Array.isArray(e.schema) &&
      e.schema.length > 0 &&
      e.schema.every((b: unknown) => typeof (b as JsonObject)?.title === 'string'),
  );
  const out: ErrorObject[] = [];
  for (const e of errors) {
    if (e.keyword === 'if') continue;
    if (titled.some((t) => e !== t && e.schemaPath.startsWith(`${t.schemaPath}/`))) continue;
    if (titled.includes(e)) out.push({ ...e, message: `must be ${(e.schema as JsonObject[]).map((b) => String(b.title)).join(' or ')}` });
    else if (e.keyword === 'enum' && Array.isArray(e.params.allowedValues)) {
      // ajv says "must be equal to one of the allowed values" without saying which.
      out.push({ ...e, message: `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` });
    } else out.push(e);
  }
  return out.slice(0, MAX_ERRORS);
}

type Check = ((data: unknown) => boolean) & { errors: ValidateFunction['errors'] };

function checker(validate: ValidateFunction, optional = false): Check {
  const check = ((data: unknown) => {
    // fastify hands a missing body over as null.
    if (optional && (data === null || data === undefined)) {
      check.errors = null;
      return true;
    }
    const ok = validate(data);
    check.errors = validate.errors ? explain(validate.errors) : null;
    return ok;
  }) as Check;
  check.errors = null;
  return check;
}

/** Creates the validator compiler: strict for bodies and path parameters, coercing for query strings (see above). */
export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const strictAjv = newAjv(false);
  const queryAjv = newAjv(true);
  return ({ schema, httpPart }) => {
    const s = schema as JsonObject;
    const ajv = httpPart === 'querystring' ? queryAjv : strictAjv;
    return checker(ajv.compile(s), httpPart === 'body' && s[OPTIONAL_BODY] === true) as ReturnType<FastifySchemaCompiler<unknown>>;
  };
}

/**
 * Installs the validator compiler on an instance. Call it on the root instance before registering route plugins,
 * so every plugin inherits it.
 */
export function installValidation(app: FastifyInstance): void {
  app.setValidatorCompiler(createValidatorCompiler());
}

/**
 * The schema for a route's `schema.body`: the spec's request body of `operationId`, marked optional when the spec
 * says the body may be omitted. Example: `schema: { body: requestBody('putFlagState') }`.
 */
export function requestBody(operationId: string): JsonObject {
  const schema = bodySchema(operationId);
  return bodyRequired(operationId) ? schema : { ...schema, [OPTIONAL_BODY]: true };
}

/**
 * A route's whole request schema from its operation: `params` and `querystring` from the operation's `parameters`,
 * `body` from its JSON request body; each only when the operation has one. Pair it with `RouteOf` (route-types.ts):
 * `app.get<RouteOf<'listFlags'>>('/flags', { schema: routeSchema('listFlags') }, ...)`. Throws at registration (so
 * at boot) when the spec has no such operation.
 */
export function routeSchema(operationId: string): FastifySchema {
  const params = parametersSchema(operationId, 'path');
  const querystring = parametersSchema(operationId, 'query');
  return {
    ...(params ? { params } : {}),
    ...(querystring ? { querystring } : {}),
    ...(hasJsonBody(operationId) ? { body: requestBody(operationId) } : {}),
  };
}
