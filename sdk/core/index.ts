export type * from './types.js';
export { OPERATORS } from './types.js';
export * from './histogram.js';
