/**
 * Changes an environment goes through, as the server records them in its change log and streams them to SDKs.
 * Defined once here and imported by the server, so both sides agree on the wire format.
 * (The stream's message envelope — hydrate, delta, ack, heartbeat — is built on these.)
 */
import type { FlagConfig, Segment } from './core/types.js';

/** One change visible to SDKs. Segments are shared by all environments, so a segment change reaches each of them. */
export type Change =
  | { type: 'flag.upsert'; flag: FlagConfig }
  | { type: 'flag.delete'; key: string }
  | { type: 'segment.upsert'; segment: Segment }
  | { type: 'segment.delete'; key: string };

/** The changes one committed write made to one environment, and the environment version it produced. */
export interface Delta {
  version: number;
  changes: Change[];
}
