/**
 * Background duties on PostgreSQL replicas: one lease row per duty (`leases`: duty, holder, expires_at), taken and
 * renewed with one conditional upsert, timed by the database's clock (replicas' clocks may disagree; the database's is
 * the one both sides of a takeover read).
 *
 * Why a lease row and not a session advisory lock: an advisory lock lives as long as the holder's connection as the
 * server sees it, and a partitioned or paused holder cannot know when the server gave up on that connection, so it
 * could go on acting after another replica took over. With a lease the holder knows its own deadline (it stops acting
 * `safetyMs` before the database would let anyone else in), a clean stop hands the duty over at once (the row is
 * deleted), and every write made for a duty is fenced: `fence()` re-reads the lease inside the writing transaction
 * (FOR SHARE, so a takeover waits for that transaction), and a replica whose lease lapsed writes nothing.
 * A SIGKILLed holder's duties are taken over within `leaseMs + renewMs`.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { StorePort, Tx } from '../storage/port.js';
import { DUTIES, LeaseLostError, type Duties, type Duty } from './duties.js';
const DB_NOW = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

export interface LeaseOptions {
  /** How long a lease lasts without renewal (ms). Default 5,000. */
  leaseMs?: number;
  /** How often the holder renews and the others try to take over (ms). Default leaseMs / 5. */
  renewMs?: number;
  /** This replica's holder id. Default host:pid:random. */
  holder?: string;
  log?: { warn(obj: unknown, msg: string): void; info(obj: unknown, msg: string): void };
}

export class LeaseDuties implements Duties {
  readonly holder: string;
  private readonly leaseMs: number;
  private readonly renewMs: number;
  /** Per duty: until when (performance.now()) this replica may act on it. */
  private readonly heldUntil = new Map<Duty, number>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private ticking: Promise<void> | null = null;

  constructor(
    private readonly store: StorePort,
    private readonly options: LeaseOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? 5000;
    this.renewMs = options.renewMs ?? Math.max(100, Math.floor(this.leaseMs / 5));
    this.holder = options.holder ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  }

  owns(duty: Duty): boolean {
    return (this.heldUntil.get(duty) ?? 0) > performance.now();
  }

  async fence(tx: Tx, duty: Duty): Promise<void> {
    const row = await tx.get(`SELECT holder FROM leases WHERE duty = ? AND holder = ? AND expires_at > ${DB_NOW} FOR SHARE`, [duty, this.holder]);
    if (!row) {
      this.heldUntil.delete(duty);
      throw new LeaseLostError(`this replica no longer holds the ${duty} lease`);
    }
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.tick();
    this.timer = setInterval(() => {
      if (!this.ticking) this.ticking = this.tick().finally(() => (this.ticking = null));
    }, this.renewMs);
    this.timer.unref();
  }

  /** Takes or renews every duty's lease it can. */
  private async tick(): Promise<void> {
    for (const duty of DUTIES) {
      if (this.stopped) return;
      const started = performance.now();
      try {
        const row = await this.store.get<{ holder: string }>(
          `INSERT INTO leases (duty, holder, expires_at) VALUES (?, ?, ${DB_NOW} + ?)
           ON CONFLICT (duty) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
           WHERE leases.holder = excluded.holder OR leases.expires_at < ${DB_NOW}
           RETURNING holder`,
          [duty, this.holder, this.leaseMs],
        );
        const had = this.owns(duty);
        if (row && !this.stopped) {
          // Act only until shortly before the database would let another replica in (measured from before the ask).
          this.heldUntil.set(duty, started + this.leaseMs - Math.min(1000, this.leaseMs / 5));
          if (!had) this.options.log?.info({ duty, holder: this.holder }, 'took over a background duty');
        } else if (had) {
          this.heldUntil.delete(duty);
          this.options.log?.warn({ duty }, 'lost a background duty to another replica');
        }
      } catch (err) {
        // Unreachable database: keep acting only until the lease's own deadline passes (owns() checks it).
        this.options.log?.warn({ err, duty }, 'cannot renew a background duty lease');
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    this.heldUntil.clear();
    // Hand over at once rather than after the lease runs out.
    await this.store.run('DELETE FROM leases WHERE holder = ?', [this.holder]).catch(() => {});
  }
}
