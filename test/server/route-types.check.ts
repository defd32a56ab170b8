/**
 * Compile-time checks of the route types (server/openapi/route-types.ts), run by `npm run typecheck` (tsc includes
 * test/**): each line fails to compile if `RouteOf` stops saying what the spec says.
 */
import type { BodyOf, PathOf, QueryOf, ReplyOf, RouteOf } from '../../server/openapi/route-types.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Mutual assignability, for types the compiler leaves deferred (where `Equal`'s identity check is too strict). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;

export type Checks = [
  // Path parameters, and none where the path has none.
  Assert<Equal<PathOf<'getFlagState'>, { key: string; env: string }>>,
  Assert<Equal<PathOf<'listFlags'>, Record<string, never>>>,
  // The query as the coercing schema leaves it: booleans and integers, times as the strings they were sent as.
  Assert<Equal<QueryOf<'listFlags'>['enabled'], boolean | undefined>>,
  Assert<Equal<QueryOf<'listAudit'>['limit'], number | undefined>>,
  Assert<Equal<QueryOf<'getFlagMetrics'>['from'], string | undefined>>,
  Assert<Equal<QueryOf<'killFlag'>['waitMs'], number | undefined>>,
  // Bodies: required ones are never undefined, optional ones may be.
  Assert<Equal<BodyOf<'createEnvironment'>['key'], string>>,
  Assert<Equal<undefined extends BodyOf<'createEnvironment'> ? true : false, false>>,
  Assert<Equal<undefined extends BodyOf<'killFlag'> ? true : false, true>>,
  Assert<Same<BodyOf<'getFlag'>, undefined>>,
  // Answers per success status; times are strings.
  Assert<Equal<keyof ReplyOf<'putSegment'>, 200 | 201>>,
  Assert<Equal<ReplyOf<'deleteSegment'>[204], undefined>>,
  Assert<Equal<ReplyOf<'getEnvironment'>[200]['createdAt'], string>>,
  Assert<Equal<RouteOf<'getToken'>['Reply'][200]['lastUsedAt'], string | null>>,
];

// @ts-expect-error an epoch-milliseconds time is not what the spec answers
export const epochTime: ReplyOf<'getEnvironment'>[200] = { key: 'qa', name: 'QA', version: 1, createdAt: 1767225600000 };
