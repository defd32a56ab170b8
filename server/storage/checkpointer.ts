/**
 * WAL checkpoints on a worker thread.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold (every ~1000 WAL pages): it copies
 * pages into the database file and fsyncs it, synchronously, on the event loop — measured here at 10–100 ms, landing
 * on whichever write (a kill switch, say) happens to be that one. So the serving connection has automatic
 * checkpoints off, and a second connection on a worker thread runs `wal_checkpoint(PASSIVE)` every second: it never
 * blocks the writer or readers, and its fsyncs happen off the event loop.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 1000');
const checkpoint = () => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { parentPort.postMessage({ error: String(err && err.message || err) }); }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.postMessage('stopped');
});
parentPort.postMessage('ready');
`;

export class Checkpointer {
  private worker: Worker | null = null;

  private constructor(private readonly sqlite: Database.Database) {}

  /**
   * Starts checkpointing `sqlite`'s file from a worker. On any failure to start, automatic checkpoints stay on
   * (correct, only slower at times). Returns null for in-memory databases.
   */
  static start(sqlite: Database.Database, log: { warn: (obj: unknown, msg: string) => void }, intervalMs = 1000): Checkpointer | null {
    if (sqlite.memory) return null;
    const c = new Checkpointer(sqlite);
    try {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module: createRequire(import.meta.url).resolve('better-sqlite3'), path: sqlite.name, intervalMs },
      });
      worker.unref();
      sqlite.pragma('wal_autocheckpoint = 0');
      worker.on('message', (m: unknown) => {
        if (typeof m === 'object' && m !== null && 'error' in m) log.warn({ error: (m as { error: string }).error }, 'WAL checkpoint failed');
      });
      worker.on('error', (err) => {
        log.warn({ err }, 'WAL checkpoint worker failed; automatic checkpoints are back on');
        if (sqlite.open) sqlite.pragma('wal_autocheckpoint = 1000');
        c.worker = null;
      });
      c.worker = worker;
    } catch (err) {
      log.warn({ err }, 'cannot start the WAL checkpoint worker; automatic checkpoints stay on');
    }
    return c;
  }

  /** Runs a last checkpoint and stops the worker (before the main connection closes). */
  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => void worker.terminate().then(() => resolve()), 5000);
      worker.on('message', (m: unknown) => {
        if (m === 'stopped') {
          clearTimeout(timer);
          void worker.terminate().then(() => resolve());
        }
      });
      worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      worker.postMessage('stop');
    });
    if (this.sqlite.open) this.sqlite.pragma('wal_autocheckpoint = 1000');
  }
}
