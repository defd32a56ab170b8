/**
 * The pure evaluation core shared by the server and the SDK: types, validation, compilation, evaluation and
 * bucketing. No `node:` imports and no I/O (test/core/purity.test.ts enforces it).
 */
// The lazy DFA for `matches` (installs itself): the server and Node apps importing the core get it; the SDK's
// browser bundle, which does not import this file, runs patterns on the Pike VM alone.
import './operators/pattern-dfa.js';
export type * from './types.js';
export { OPERATORS } from './types.js';
export * from './histogram.js';
export { murmur3 } from './murmur3.js';
export { bucket, BUCKETS, SaltedBucketer } from './bucket.js';
export {
  validateFlagDefinition,
  validateFlagState,
  validateSegment,
  KEY_PATTERN,
  NAME_PATTERN,
  FLAG_KINDS,
  LIMITS,
  type ValidationResult,
} from './validate.js';
export { defaultFlagState } from './defaults.js';
export { compileEnvironment, compileFlag, compileSegment, applyChanges } from './compile-checked.js';
export {
  compileTrustedEnvironment,
  compileTrustedFlag,
  compileTrustedSegment,
  applyTrustedChanges,
  flagKeysUsingSegment,
  REASON_KINDS,
  type CompiledEnvironment,
  type CompiledFlag,
  type CompiledSegment,
} from './compile.js';
export { evaluate, evaluateAll, evaluateFlag, kindAccepts, lastOutcome } from './evaluate.js';
export { parseSemver, compareSemver, type SemVer } from './operators/semver.js';
export { parseIsoDate, toEpochMillis } from './operators/dates.js';
