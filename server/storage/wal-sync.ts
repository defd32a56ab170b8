/**
 * Durable acknowledgements without blocking the event loop.
 *
 * The connection runs with `synchronous=NORMAL`: a COMMIT appends to the WAL (in the OS page cache) and returns at
 * once, so it survives the process being killed but not yet a power loss. Before a write is acknowledged, the route
 * awaits `durable()`, which fsyncs the WAL file on libuv's thread pool. So an acknowledged write survives power loss
 * (as with `synchronous=FULL`), but the fsync — several milliseconds on this hardware, tens under load — no longer
 * blocks the event loop: SDK requests keep being served while it runs, and concurrent writers share one fsync
 * (group commit). The kill switches are the exception (`durableSync`): under SDK load, the wait for the loop to come
 * back round to a thread-pool fsync's completion cost them more than the fsync itself, so they fsync in place.
 */
import { fdatasync, fdatasyncSync, open, openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';

/** Bucket upper bounds (seconds) of the fsync latency histogram (`aviary_wal_fsync_seconds`). */
export const FSYNC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] as const;

/** Durations of the WAL fsyncs run so far: non-cumulative counts per bucket of FSYNC_BUCKETS (last: above all). */
export interface FsyncStats {
  counts: number[];
  sum: number;
  count: number;
}

export class WalSync {
  /**
   * How long each fsync took. A kill switch's latency is this plus the server's own work, so operators (and
   * bench:server) can tell a slow disk from a slow server.
   */
  readonly stats: FsyncStats = { counts: new Array<number>(FSYNC_BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
  private fd: number | null = null;
  private readonly totalChanges;
  /** `total_changes()` covered by the last completed fsync. */
  private synced: number;
  private inflight: Promise<void> | null = null;

  constructor(private readonly sqlite: Database.Database) {
    this.totalChanges = sqlite.prepare<[], { n: number }>('SELECT total_changes() AS n');
    this.synced = 0;
  }

  private changes(): number {
    return this.sqlite.open ? this.totalChanges.get()!.n : this.synced;
  }

  /** Resolves once every transaction committed on this connection before the call is on stable storage. */
  async durable(): Promise<void> {
    if (this.sqlite.memory) return;
    const target = this.changes();
    while (this.synced < target) {
      if (!this.inflight) {
        const upTo = this.changes();
        this.inflight = this.syncOnce().then(
          () => {
            this.synced = Math.max(this.synced, upTo);
            this.inflight = null;
          },
          (err: unknown) => {
            this.inflight = null;
            throw err;
          },
        );
      }
      await this.inflight;
    }
  }

  /**
   * Like `durable()`, but fsyncs on the calling thread: the caller's acknowledgement does not wait for the event loop
   * to come back round to the fsync's completion (a full pass of SDK traffic under load), at the price of blocking the
   * loop for the fsync itself. For the kill switch, whose latency is what an incident waits on.
   */
  durableSync(): void {
    if (this.sqlite.memory) return;
    const target = this.changes();
    if (this.synced >= target) return;
    if (this.fd === null) {
      const wal = `${this.sqlite.name}-wal`;
      const fd = openSync(wal, 'r');
      const dir = openSync(dirname(wal), 'r');
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
      // An async open may have raced this one: keep one descriptor.
      if (this.fd === null) this.fd = fd;
      else closeSync(fd);
    }
    const started = performance.now();
    fdatasyncSync(this.fd);
    this.record((performance.now() - started) / 1000);
    this.synced = Math.max(this.synced, target);
  }

  private record(seconds: number): void {
    let i = 0;
    while (i < FSYNC_BUCKETS.length && seconds > FSYNC_BUCKETS[i]!) i++;
    this.stats.counts[i]!++;
    this.stats.sum += seconds;
    this.stats.count++;
  }

  private async syncOnce(): Promise<void> {
    const fd = await this.walFd();
    // fdatasync, as SQLite itself uses on Linux: the data and the file size, without the mtime (one journal write less).
    const started = performance.now();
    await new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
    this.record((performance.now() - started) / 1000);
  }

  private async walFd(): Promise<number> {
    if (this.fd !== null) return this.fd;
    const wal = `${this.sqlite.name}-wal`;
    this.fd = await new Promise<number>((resolve, reject) => open(wal, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
    // The WAL file was created by this process: make its directory entry durable too (once).
    const dir = openSync(dirname(wal), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    return this.fd;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
