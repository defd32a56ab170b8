/**
 * Request validation with the spec's schemas. fastify's default ajv coerces types (`"3"` becomes `3`) and silently
 * drops unknown properties; for request bodies that would store something other than what the client sent, and
 * the contract says values are never coerced. So bodies get a strict validator (no coercion, no removal, every
 * error reported), while query strings, path params and headers — which are strings on the wire — keep coercion.
 *
 * Failures reach `problemErrorHandler` (server/errors.ts) as fastify validation errors and are rendered as
 * problem+json with a JSON-pointer path per field.
 */
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { contextBudgetKeyword } from '../limits/context-budget.js';
import { bodyRequired, bodySchema, type JsonObject } from './spec.js';

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
  });
  addFormats(ajv);
  // `x-aviary-context-budget`: the evaluation budget of a context (server/limits/context-budget.ts).
  ajv.addKeyword(contextBudgetKeyword);
  return ajv;
}

// Every error is reported (allErrors), but a huge bad array must not make a huge problem document.
const MAX_ERRORS = 50;

/** Creates the validator compiler: strict for bodies, coercing for the string-typed parts of a request. */
export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const bodyAjv = newAjv(false);
  const partAjv = newAjv(true);
  return ({ schema, httpPart }) => {
    if (httpPart !== 'body') return partAjv.compile(schema as JsonObject) as ReturnType<FastifySchemaCompiler<unknown>>;
    const validate: ValidateFunction = bodyAjv.compile(schema as JsonObject);
    const optional = (schema as JsonObject)[OPTIONAL_BODY] === true;
    const check = ((data: unknown) => {
      // fastify hands a missing body over as null.
      if (optional && (data === null || data === undefined)) {
        check.errors = null;
        return true;
      }
      const ok = validate(data);
      // An `if`/`then` failure ("must match \"then\" schema") only restates the errors of its branch, listed anyway.
      check.errors = validate.errors ? validate.errors.filter((e) => e.keyword !== 'if').slice(0, MAX_ERRORS) : null;
      return ok;
    }) as ((data: unknown) => boolean) & { errors: ValidateFunction['errors'] };
    check.errors = null;
    return check;
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
