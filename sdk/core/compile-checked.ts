/**
 * Compilation with full validation in front, for the server and the console: a flag or segment that fails
 * validation compiles to a malformed one whose `error` carries the validator's path-addressed issues. The SDK does
 * not import this module (it compiles what the server already validated, see `compile.ts`), so the validator stays
 * out of the browser bundle.
 */
import {
  applyChangesWith,
  brokenSegment,
  compileEnvironmentWith,
  compileTrustedFlag,
  compileTrustedSegment,
  malformed,
  segmentKeysOf,
  type CompiledEnvironment,
  type CompiledFlag,
  type CompiledSegment,
  type CompileOptions,
  type Compilers,
} from './compile.js';
import type { PatternEngine } from './operators/pattern.js';
import type { Change, EnvironmentSnapshot, FlagConfig, Segment } from './types.js';
import { validateFlagDefinition, validateFlagState, validateSegment } from './validate.js';

function issuesText(issues: readonly { path: string; message: string }[]): string {
  return issues.map((i) => `${i.path} ${i.message}`).join('; ');
}

/**
 * Validates and compiles a segment (`matches` accelerated by `patternEngine`, if given). Never throws: an invalid
 * segment contains nobody and carries `error`.
 */
export function compileSegment(segment: Segment, patternEngine?: PatternEngine): CompiledSegment {
  const checked = validateSegment(segment);
  if (checked.ok) return { ...compileTrustedSegment(checked.value, patternEngine), source: segment };
  const key = typeof (segment as { key?: unknown })?.key === 'string' ? segment.key : '';
  return brokenSegment(segment, key, `is invalid: ${issuesText(checked.issues)}`);
}

/**
 * Validates and compiles one flag against the environment's compiled segments (`matches` accelerated by
 * `patternEngine`, if given), linking its prerequisites to the compiled `flags`. Never throws: anything wrong yields
 * a flag whose `error` is set, naming the failing paths. A prerequisite naming a flag not in `flags` is no error
 * here: it fails at evaluation (CONTRACT §12); the server refuses to store one.
 */
export function compileFlag(
  config: FlagConfig,
  segments: ReadonlyMap<string, CompiledSegment>,
  patternEngine?: PatternEngine,
  flags?: ReadonlyMap<string, CompiledFlag>,
): CompiledFlag {
  try {
    const def = validateFlagDefinition(config);
    if (!def.ok) return malformed(config, `invalid flag: ${issuesText(def.issues)}`);
    const segmentKeys = new Set<string>();
    for (const [k, s] of segments) if (s.error === undefined) segmentKeys.add(k);
    const st = validateFlagState(config.state, def.value, segmentKeys);
    if (!st.ok) {
      const missing = segmentKeysOf(config).filter((k) => segments.get(k)?.error !== undefined);
      const why = missing.length > 0 ? `${segments.get(missing[0]!)!.error}; ` : '';
      return malformed(config, `invalid state: ${why}${issuesText(st.issues)}`);
    }
    const version = typeof config.state.version === 'number' ? config.state.version : 0;
    const compiled = compileTrustedFlag({ ...def.value, state: { ...st.value, version } }, segments, patternEngine, flags);
    // Keep the config as given, so callers comparing or re-serving it see what they passed in.
    return compiled.error === null ? { ...compiled, config } : malformed(config, compiled.error);
  } catch (e) {
    return malformed(config, `cannot compile: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The validating compilers. */
export const CHECKED: Compilers = { flag: compileFlag, segment: compileSegment };

/**
 * Validates and compiles a whole snapshot as `options` say (the server passes `{ patternEngine: lazyDfa }`). Never
 * throws.
 */
export function compileEnvironment(snapshot: EnvironmentSnapshot, options?: CompileOptions): CompiledEnvironment {
  return compileEnvironmentWith(snapshot, CHECKED, options);
}

/**
 * Applies changes in order, validating what it recompiles, and returns a new environment compiled with the same
 * pattern engine (the given one is left intact). Only an upserted flag, the flags referencing a changed or deleted
 * segment, and the flags requiring any of those (or a deleted flag) are recompiled. Never throws.
 */
export function applyChanges(env: CompiledEnvironment, changes: readonly Change[], version?: number): CompiledEnvironment {
  return applyChangesWith(env, changes, version, CHECKED);
}
