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

/**
 * What an SDK instance sends to `POST /sdk/v1/metrics`. `sdkId` is random per SDK instance and `seq` increases by
 * one per report; the server counts each (sdkId, seq) exactly once, so a report retried after a lost response is
 * acknowledged again but not counted twice.
 */
export interface MetricsReport {
  sdkId: string;
  seq: number;
  /** Optional identification, shown in the console. */
  app?: { name?: string; version?: string };
  sdk?: { name: string; version: string };
  stats: VariantStats[];
}

/** Evaluations and outcomes of one flag variant in one minute, as counted by one SDK instance. */
export interface VariantStats {
  flag: string;
  /** The served variant, or null when the caller's default was returned (unknown flag, wrong type, ...). */
  variant: string | null;
  /** Start of the minute (epoch milliseconds, a multiple of 60,000). */
  minute: number;
  evaluations: number;
  /** Evaluations broken down by reason kind (OFF, TARGET_MATCH, RULE_MATCH, FALLTHROUGH, ERROR). */
  reasons?: Partial<Record<import('./core/types.js').ReasonKind, number>>;
  /** Outcomes recorded with `track()` for contexts served this variant. */
  outcomes: number;
  /** Outcomes with `error: true`. */
  errors: number;
  /** Latency histogram of outcomes with `latencyMs` (see core/histogram.ts). */
  latency?: import('./core/histogram.js').SparseHistogram;
  /** Sum and count of numeric `value` outcomes. */
  valueSum?: number;
  valueCount?: number;
}
