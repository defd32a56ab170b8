/**
 * Route types from the generated OpenAPI types (`openapi/types.ts`): what a handler receives (path parameters, query,
 * body) and may answer (the JSON body of each 2xx status), so a handler that drifts from the spec fails to compile.
 *
 *   app.get<RouteOf<'listFlags'>>('/flags', { schema: routeSchema('listFlags') }, async (request) => { ... });
 *
 * The types say what the schema (`routeSchema`, validation.ts) has already enforced at run time: the query is
 * coerced to the declared types (`enabled` is a boolean), absent optional parts are `undefined`.
 */
import type { operations } from '../../openapi/types.js';

/** An operationId of the spec. */
export type OperationId = keyof operations;

type Never<T, Else> = [T] extends [never] ? Else : T;
/** Nothing there: an object with no members (what fastify hands a route without parameters or query). */
type Empty = Record<string, never>;

/** The path parameters of an operation (`{ key, env }`). */
export type PathOf<Op extends OperationId> = Never<NonNullable<operations[Op]['parameters']['path']>, Empty>;
/** The query parameters of an operation, as the coercing query schema leaves them. */
export type QueryOf<Op extends OperationId> = Never<NonNullable<operations[Op]['parameters']['query']>, Empty>;

type RequestBodyOf<Op extends OperationId> = NonNullable<operations[Op]['requestBody']>;
type JsonBody<B> = B extends { content: { 'application/json': infer J } } ? J : never;
/** Whether the spec lets the body be omitted (`requestBody?:` in the generated types). */
type BodyOptional<Op extends OperationId> = operations[Op] extends { requestBody: unknown } ? false : true;
/** The JSON request body of an operation; `| undefined` when the spec says it may be omitted; undefined without one. */
export type BodyOf<Op extends OperationId> = [JsonBody<RequestBodyOf<Op>>] extends [never]
  ? undefined
  : JsonBody<RequestBodyOf<Op>> | (BodyOptional<Op> extends true ? undefined : never);

type Responses<Op extends OperationId> = operations[Op]['responses'];
type SuccessStatus<Op extends OperationId> = Extract<keyof Responses<Op>, 200 | 201 | 202 | 204>;
type ResponseBody<R> = R extends { content: { 'application/json': infer J } } ? J : undefined;
/** What each success status of an operation answers (`{ 200: Flag }`, `{ 201: Segment; 200: Segment }`). */
export type ReplyOf<Op extends OperationId> = { [S in SuccessStatus<Op>]: ResponseBody<Responses<Op>[S]> };

/** fastify's route generic for an operation: `app.get<RouteOf<'getFlag'>>(...)`. */
export interface RouteOf<Op extends OperationId> {
  Params: PathOf<Op>;
  Querystring: QueryOf<Op>;
  Body: BodyOf<Op>;
  Reply: ReplyOf<Op>;
}
