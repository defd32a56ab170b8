/**
 * The evaluation core's functions the server calls, in one place.
 *
 * TEMPORARY: the core (`sdk/core/index.ts`) is being written concurrently. Until it exports these names, the
 * fallbacks below keep the server bootable with structural checks only. Once the core lands, this file becomes plain
 * re-exports (delete the fallbacks).
 */
import * as core from '@aviary/sdk/core';
import type { FlagDefinition, FlagState, Segment, ValidationIssue } from '@aviary/sdk/core';

/** The core's validation result. */
export type Validated<T> = { ok: true; value: T } | { ok: false; issues: ValidationIssue[] };

type CoreFns = {
  validateFlagDefinition?: (input: unknown) => Validated<FlagDefinition>;
  validateFlagState?: (input: unknown, flag: FlagDefinition, segmentKeys: ReadonlySet<string> | readonly string[]) => Validated<FlagState>;
  validateSegment?: (input: unknown) => Validated<Segment>;
  defaultFlagState?: (flag: FlagDefinition) => FlagState;
};
const fns = core as unknown as CoreFns;

const KEY = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates a flag definition (key, kind, variants; a boolean flag without variants gets on/off). */
export function validateFlagDefinition(input: unknown): Validated<FlagDefinition> {
  if (fns.validateFlagDefinition) return fns.validateFlagDefinition(input);
  if (!isObj(input)) return { ok: false, issues: [{ path: '', message: 'must be an object' }] };
  const issues: ValidationIssue[] = [];
  if (typeof input.key !== 'string' || !KEY.test(input.key)) issues.push({ path: '/key', message: 'must match ^[a-z0-9][a-z0-9._-]{0,127}$' });
  const kind = input.kind;
  if (kind !== 'boolean' && kind !== 'string' && kind !== 'number' && kind !== 'json') issues.push({ path: '/kind', message: 'must be boolean, string, number or json' });
  let variants = input.variants;
  if (variants === undefined && kind === 'boolean') variants = [{ key: 'on', value: true }, { key: 'off', value: false }];
  if (!Array.isArray(variants) || variants.length === 0) issues.push({ path: '/variants', message: 'must be a non-empty array' });
  if (issues.length) return { ok: false, issues };
  return {
    ok: true,
    value: {
      key: input.key as string,
      kind: kind as FlagDefinition['kind'],
      variants: variants as FlagDefinition['variants'],
      ...(typeof input.description === 'string' ? { description: input.description } : {}),
      ...(Array.isArray(input.tags) ? { tags: input.tags as string[] } : {}),
      ...(typeof input.archived === 'boolean' ? { archived: input.archived } : {}),
    },
  };
}

/** Validates a flag state against its flag (variant keys) and the known segment keys. */
export function validateFlagState(input: unknown, flag: FlagDefinition, segmentKeys: ReadonlySet<string>): Validated<FlagState> {
  if (fns.validateFlagState) return fns.validateFlagState(input, flag, segmentKeys);
  if (!isObj(input)) return { ok: false, issues: [{ path: '', message: 'must be an object' }] };
  const variantKeys = new Set(flag.variants.map((v) => v.key));
  const issues: ValidationIssue[] = [];
  if (typeof input.enabled !== 'boolean') issues.push({ path: '/enabled', message: 'must be a boolean' });
  if (typeof input.offVariant !== 'string' || !variantKeys.has(input.offVariant)) issues.push({ path: '/offVariant', message: 'must name a variant of the flag' });
  if (!isObj(input.fallthrough)) issues.push({ path: '/fallthrough', message: 'must be an object' });
  if (issues.length) return { ok: false, issues };
  return {
    ok: true,
    value: {
      enabled: input.enabled as boolean,
      offVariant: input.offVariant as string,
      targets: (input.targets ?? []) as FlagState['targets'],
      rules: (input.rules ?? []) as FlagState['rules'],
      fallthrough: input.fallthrough as FlagState['fallthrough'],
      version: typeof input.version === 'number' ? input.version : 0,
    },
  };
}

/** Validates a segment. */
export function validateSegment(input: unknown): Validated<Segment> {
  if (fns.validateSegment) return fns.validateSegment(input);
  if (!isObj(input)) return { ok: false, issues: [{ path: '', message: 'must be an object' }] };
  if (typeof input.key !== 'string' || !KEY.test(input.key)) return { ok: false, issues: [{ path: '/key', message: 'must match ^[a-z0-9][a-z0-9._-]{0,127}$' }] };
  return {
    ok: true,
    value: {
      key: input.key,
      ...(typeof input.description === 'string' ? { description: input.description } : {}),
      included: (input.included ?? []) as string[],
      excluded: (input.excluded ?? []) as string[],
      rules: (input.rules ?? []) as Segment['rules'],
    },
  };
}

/** The state a new flag starts with in every environment. */
export function defaultFlagState(flag: FlagDefinition): FlagState {
  if (fns.defaultFlagState) return fns.defaultFlagState(flag);
  const off = flag.variants.find((v) => v.key === 'off')?.key ?? flag.variants[flag.variants.length - 1]!.key;
  const on = flag.variants[0]!.key;
  return { enabled: false, offVariant: off, targets: [], rules: [], fallthrough: { variant: on }, version: 1 };
}
