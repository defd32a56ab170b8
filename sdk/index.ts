export type * from './core/types.js';
export { createClient, SDK_VERSION } from './client.js';
export type { AviaryClient, ClientEvents, ClientOptions, ClientStatus, Widen } from './client.js';
export type { Outcome } from './evaluator.js';
export type { BackoffOptions } from './backoff.js';
export type { WebSocketConstructor, WebSocketLike } from './stream-client.js';
export type { PatternEngine, ProgramView } from './core/operators/pattern.js';
export type { Change, Delta, MetricsReport, VariantStats } from './protocol.js';
