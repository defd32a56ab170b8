/**
 * The pure evaluation core shared by the server and the SDK: types, validation, compilation, evaluation and
 * bucketing. No `node:` imports, no I/O, no state of its own: what compilation shares lives in the compiled
 * environment, and the lazy DFA for `matches` is used where it is passed (`compileEnvironment(snapshot,
 * { patternEngine: lazyDfa })`). test/core/purity.test.ts enforces all three.
 */
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
  type PrerequisiteFlags,
} from './validate.js';
export { defaultFlagState } from './defaults.js';
export { compileEnvironment, compileFlag, compileSegment, applyChanges } from './compile-checked.js';
export {
  compileTrustedEnvironment,
  compileTrustedFlag,
  compileTrustedSegment,
  applyTrustedChanges,
  flagKeysUsingSegment,
  prerequisiteKeysOf,
  type CompiledEnvironment,
  type CompiledFlag,
  type CompiledPrerequisite,
  type CompiledSegment,
  type CompileOptions,
} from './compile.js';
export { evaluate, evaluateAll, evaluateFlag, kindAccepts, REASON_KINDS, MAX_PREREQUISITE_DEPTH, type PrerequisiteListener } from './evaluate.js';
export {
  explainFlag,
  type FlagExplanation,
  type RuleTrace,
  type ConditionTrace,
  type PrerequisiteTrace,
  type RolloutTrace,
  type RolloutRange,
  type ServeTrace,
} from './explain.js';
export { lazyDfa } from './operators/pattern-dfa.js';
export type { PatternEngine, ProgramView } from './operators/pattern.js';
export { parseSemver, compareSemver, type SemVer } from './operators/semver.js';
export { parseIsoDate, toEpochMillis } from './operators/dates.js';
