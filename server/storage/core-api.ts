/** The evaluation core's validators and defaults, as the server uses them (one import site). */
export { validateFlagDefinition, validateFlagState, validateSegment, defaultFlagState, type ValidationResult } from '@aviary/sdk/core';
