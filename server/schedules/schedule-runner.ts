/**
 * Runs scheduled changes (server/storage/schedule-store.ts) on the replica that owns the `schedules` duty.
 *
 * The table is the truth, not a timer: each tick reads the pending schedules that are due and runs each one through
 * the store (one fenced write per schedule, which re-reads the row and acts only while it is pending), then arms one
 * timer for the sooner of the next tick (`pollMs`) and the next pending `at`, so a schedule fires within
 * milliseconds of its time on the owning replica, and within `pollMs` of its creation when it was created on another
 * replica for a time already near. A schedule whose time passed while no server ran is due at the first tick after
 * boot (or after a takeover) and runs then, audited as late. Ticks run one at a time; `stop` waits for the one under way.
 */
import { LeaseLostError, type Duties } from '../cluster/duties.js';
import { Ticker } from '../cluster/ticker.js';
import type { RunOutcome, ScheduleStore } from '../storage/schedule-store.js';

export interface ScheduleRunnerOptions {
  store: ScheduleStore;
  duties: Pick<Duties, 'owns' | 'fence'>;
  now: () => number;
  /** How often the table is polled (ms). Default 1,000. */
  pollMs?: number;
  log?: { error: (obj: unknown, msg: string) => void; warn: (obj: unknown, msg: string) => void; info?: (obj: unknown, msg: string) => void };
  /** Called after each schedule ran or failed (tests, metrics). */
  onOutcome?: (outcome: RunOutcome) => void;
}

export class ScheduleRunner {
  private readonly ticker = new Ticker(() => this.tick());
  private readonly pollMs: number;

  constructor(private readonly o: ScheduleRunnerOptions) {
    this.pollMs = o.pollMs ?? 1000;
  }

  private get stopped(): boolean {
    return this.ticker.stopped;
  }

  /** Starts ticking at once (schedules missed while no server ran are due now). */
  start(): void {
    this.ticker.start();
  }

  /** Stops the timer and waits for the tick under way. */
  stop(): Promise<void> {
    return this.ticker.stop();
  }

  /** Ticks now (or right after the tick under way): a schedule was created or its time may be near. */
  wake(): void {
    this.ticker.wake();
  }

  /** One tick: run what is due (owner only); answers the wait before the next. Never throws. */
  private async tick(): Promise<number> {
    let nextAt: number | null = null;
    let failed = false;
    try {
      if (this.o.duties.owns('schedules')) {
        // Batches until nothing due is left, so a backlog (a long downtime) drains in one tick.
        for (;;) {
          const due = await this.o.store.due(this.o.now());
          if (due.length === 0 || this.stopped) break;
          let progressed = false;
          for (const id of due) {
            if (this.stopped) break;
            const outcome = await this.runOne(id);
            if (outcome === 'lease-lost') return this.delay(null);
            if (outcome === 'error') failed = true;
            else progressed = true;
          }
          if (!progressed) break;
        }
        nextAt = await this.o.store.nextAt();
      }
    } catch (err) {
      (this.o.log ?? console).error({ err }, 'scheduled changes: tick failed');
    }
    // After an error, wait a whole poll before trying again (not a tight loop on a schedule that is already due).
    return this.delay(failed ? null : nextAt);
  }

  private async runOne(id: string): Promise<'ok' | 'error' | 'lease-lost'> {
    try {
      const outcome = await this.o.store.run(id, (w) => this.o.duties.fence(w.tx, 'schedules'));
      if (outcome.outcome === 'failed') (this.o.log ?? console).warn({ schedule: id, error: outcome.error }, 'scheduled change failed');
      this.o.onOutcome?.(outcome);
      return 'ok';
    } catch (err) {
      if (err instanceof LeaseLostError) {
        (this.o.log ?? console).warn({ err }, 'scheduled changes: the duty moved to another replica');
        return 'lease-lost';
      }
      // The database is away, say: the schedule stays pending and the next tick tries again.
      (this.o.log ?? console).error({ err, schedule: id }, 'scheduled change could not run; will retry');
      return 'error';
    }
  }

  /** Until the next tick: the sooner of the next poll and the next pending `at`. */
  private delay(nextAt: number | null): number {
    const untilNext = nextAt === null ? this.pollMs : Math.max(0, nextAt - this.o.now());
    return Math.min(this.pollMs, untilNext);
  }
}
