/**
 * Background duties (canary guards, retention, scheduled changes; later webhook deliveries) run on exactly one replica at a
 * time. `Duties` answers whether this replica owns one now, and fences writes made on a duty's behalf: `fence(tx, duty)`
 * inside the writing transaction fails it unless the lease is still this replica's, so a replica that lost its lease
 * (paused, partitioned) cannot act on stale judgement after another has taken over.
 */
import type { Tx } from '../storage/port.js';

/** The background duties. */
export const DUTIES = ['canary-guard', 'retention', 'schedules', 'webhooks'] as const;
export type Duty = (typeof DUTIES)[number];

export interface Duties {
  /** True while this replica holds the duty's lease (on SQLite, one process: always). */
  owns(duty: Duty): boolean;
  /** Inside a write: rejects (rolling the write back) unless this replica still holds the duty's lease. */
  fence(tx: Tx, duty: Duty): Promise<void>;
  /** Starts acquiring and renewing leases. */
  start(): Promise<void>;
  /** Gives up every lease (another replica takes over at once) and stops. */
  stop(): Promise<void>;
}

/** One process on one SQLite file owns every duty. */
export class SingleProcessDuties implements Duties {
  owns(): boolean {
    return true;
  }
  fence(): Promise<void> {
    return Promise.resolve();
  }
  start(): Promise<void> {
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
}

/** Thrown by `fence` when the lease is no longer this replica's: the duty's write is abandoned, nothing changes. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}
