/**
 * Following the change log: how committed changes reach this replica's live state (live-state.ts) and change feed
 * (stream hub, compiled caches), always in version order per environment.
 *
 * - This replica's own writes arrive from the writer right after COMMIT (`publish`).
 * - On PostgreSQL, other replicas' writes are announced by NOTIFY `<environment>:<version>` (sent in their writing
 *   transaction, so only on commit); a notification, every (re-)LISTEN, and a slow poll (a missed notification must
 *   not lose a change) make this replica read the versions it has not seen from `change_log` and apply them in order.
 * - If the log no longer reaches back to where this replica is (it was away for longer than the change log keeps), it
 *   reloads the environment's snapshot and emits `environment.reset`.
 */
import type { ChangeEvent, ChangeFeed } from './change-feed.js';
import type { LiveState } from './live-state.js';
import type { StorePort, Subscription } from './port.js';
import { readChangeLog, readEnvironmentVersion } from './snapshot.js';
import { CHANGES_CHANNEL } from './writer.js';

export interface FollowerLog {
  error(obj: unknown, msg: string): void;
  warn(obj: unknown, msg: string): void;
}

export class ChangeFollower {
  /** Per environment: the catch-up running now, and whether another is wanted after it. */
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private subscription: Subscription | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** When this replica last read the environments' versions successfully (readiness, lag). */
  lastSyncAt = 0;
  /** Versions applied from other replicas' writes (metrics). */
  followed = 0;

  /**
   * Called when the database is found behind what this replica served (a failover that lost commits): moves the
   * environment's version past `served` (the app does it through the writer, audited).
   */
  recover: ((environment: string, served: number) => Promise<void>) | null = null;

  constructor(
    private readonly store: StorePort,
    private readonly live: LiveState,
    private readonly feed: ChangeFeed,
    private readonly log: FollowerLog,
    private readonly now: () => number = Date.now,
  ) {}

  /** This replica's committed writes, in commit order. */
  publish(events: ChangeEvent[]): void {
    for (const event of events) {
      const result = this.live.apply(event);
      if (result === 'applied') this.emit(event);
      else if (result === 'gap') void this.catchUp(event.environment);
    }
  }

  /** Loads every environment (boot). */
  async loadAll(): Promise<void> {
    const rows = await this.store.all<{ key: string }>('SELECT key FROM environments');
    for (const r of rows) await this.live.load(r.key);
    this.lastSyncAt = this.now();
  }

  /** Follows the other replicas' writes (PostgreSQL): LISTEN, and poll every `pollMs` in case a notification is lost. */
  async follow(pollMs: number): Promise<void> {
    if (this.store.dialect !== 'postgres') return;
    this.subscription = await this.store.listen(
      CHANGES_CHANNEL,
      (payload) => this.notified(payload),
      () => void this.syncAll(),
    );
    this.timer = setInterval(() => void this.syncAll(), pollMs);
    this.timer.unref();
  }

  private notified(payload: string): void {
    const at = payload.lastIndexOf(':');
    if (at <= 0) return;
    const environment = payload.slice(0, at);
    const version = Number(payload.slice(at + 1));
    const held = this.live.version(environment);
    if (held === null) void this.discovered(environment);
    else if (version > held) void this.catchUp(environment);
  }

  /** Reads every environment's version and catches up where this replica is behind (poll, re-listen). */
  async syncAll(): Promise<void> {
    if (this.closed) return;
    try {
      const rows = await this.store.all<{ key: string; version: number }>('SELECT key, version FROM environments');
      this.lastSyncAt = this.now();
      for (const r of rows) {
        const held = this.live.version(r.key);
        if (held === null) await this.discovered(r.key);
        else if (Number(r.version) > held) await this.catchUp(r.key);
        else if (Number(r.version) < held && this.recover) {
          this.log.error({ environment: r.key, database: Number(r.version), served: held }, 'the database is behind what this replica served');
          await this.recover(r.key, held);
          await this.catchUp(r.key);
        }
      }
    } catch (err) {
      if (!this.closed) this.log.warn({ err }, 'cannot read the change log; retrying');
    }
  }

  /** Catches up with `environment` now (e.g. an SDK resumes from a version this replica has not applied yet). */
  catchUp(environment: string): Promise<void> {
    const current = this.running.get(environment);
    if (current) {
      this.again.add(environment);
      return current;
    }
    const run = (async () => {
      try {
        do {
          this.again.delete(environment);
          await this.readLog(environment);
        } while (this.again.has(environment) && !this.closed);
      } catch (err) {
        if (!this.closed) this.log.warn({ err, environment }, 'cannot read the change log; the next poll retries');
      } finally {
        this.running.delete(environment);
      }
    })();
    this.running.set(environment, run);
    return run;
  }

  private async readLog(environment: string): Promise<void> {
    for (;;) {
      const held = this.live.version(environment);
      if (held === null) return void (await this.discovered(environment));
      const deltas = await readChangeLog(this.store, environment, held);
      if (deltas.length === 0) {
        // Nothing logged after our version, yet the counter may be past it (versions were moved forward): reload.
        const current = await readEnvironmentVersion(this.store, environment);
        if (current !== null && current > held) await this.reload(environment);
        return;
      }
      for (const delta of deltas) {
        const event = { environment, delta };
        const result = this.live.apply(event);
        if (result === 'applied') {
          this.followed++;
          this.emit(event);
        } else if (result === 'gap') {
          // The log no longer reaches back to this replica's version: start over from a snapshot.
          await this.reload(environment);
          return;
        }
      }
    }
  }

  /** Starts the environment over from a snapshot: whatever was built from its deltas is rebuilt, SDKs rehydrate. */
  private async reload(environment: string): Promise<void> {
    await this.live.load(environment);
    this.log.warn({ environment }, 'could not follow the change log delta by delta; reloaded the environment');
    this.feed.emit('environment.reset', { environment });
  }

  private async discovered(environment: string): Promise<void> {
    if (await this.live.load(environment)) this.feed.emit('environment.created', { environment });
  }

  /** Each listener separately: the write is committed, so one failing subscriber must not keep the others from it. */
  private emit(event: ChangeEvent): void {
    for (const listener of this.feed.listeners('change') as ((e: ChangeEvent) => void)[]) {
      try {
        listener(event);
      } catch (err) {
        this.log.error({ err, environment: event.environment }, 'change feed listener failed');
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.subscription?.unlisten().catch(() => {});
    await Promise.allSettled([...this.running.values()]);
  }
}
