/**
 * Sends evaluation counts and outcomes to `POST /sdk/v1/metrics` as `MetricsReport`s. Each report gets the next
 * `seq` when it is cut; a report whose send failed stays queued and is retried with the SAME seq, so the server
 * (which counts each (sdkId, seq) once) neither loses nor double-counts it. The queue is bounded: when it is full the
 * oldest report is dropped and counted, because an SDK must never grow without limit while its server is down.
 */
import type { MetricsReport, VariantStats } from './protocol.js';

export interface MetricsReporterOptions {
  url: string;
  sdkKey: string;
  sdkId: string;
  sdkVersion: string;
  app?: { name?: string; version?: string };
  fetch: typeof fetch;
  /** Reports kept while the server is unreachable. Default 32. */
  maxPendingReports?: number;
  /** Stats rows per report (a larger batch is split). Default 5,000. */
  maxStatsPerReport?: number;
  /** Per-request timeout (ms). Default 10,000. */
  timeoutMs?: number;
}

/** What happened to reports, for diagnostics and tests. */
export interface ReporterStats {
  sent: number;
  failedAttempts: number;
  /** Reports dropped: the queue overflowed, or the server rejected them as invalid (a retry would not help). */
  droppedReports: number;
  pending: number;
}

export class MetricsReporter {
  private _seq = 0;
  private readonly _queue: MetricsReport[] = [];
  private _sending: Promise<void> | null = null;
  private readonly _counters = { sent: 0, failedAttempts: 0, droppedReports: 0 };

  constructor(private readonly _options: MetricsReporterOptions) {}

  get stats(): ReporterStats {
    return { ...this._counters, pending: this._queue.length };
  }

  /** Cuts the given stats into reports (each with the next seq) and queues them. */
  enqueue(stats: VariantStats[]): void {
    const per = this._options.maxStatsPerReport ?? 5_000;
    for (let i = 0; i < stats.length; i += per) {
      const report: MetricsReport = {
        sdkId: this._options.sdkId,
        seq: ++this._seq,
        sdk: { name: '@aviary/sdk', version: this._options.sdkVersion },
        stats: stats.slice(i, i + per),
      };
      if (this._options.app) report.app = this._options.app;
      this._queue.push(report);
    }
    const max = this._options.maxPendingReports ?? 32;
    while (this._queue.length > max) {
      this._queue.shift();
      this._counters.droppedReports++;
    }
  }

  /**
   * Sends queued reports in order until the queue is empty or a send fails (then the rest waits for the next flush).
   * Resolves to true when nothing is left pending. Concurrent calls share one sender.
   */
  async send(): Promise<boolean> {
    while (this._sending) await this._sending;
    if (this._queue.length === 0) return true;
    this._sending = this._drainQueue();
    try {
      await this._sending;
    } finally {
      this._sending = null;
    }
    return this._queue.length === 0;
  }

  private async _drainQueue(): Promise<void> {
    while (this._queue.length > 0) {
      const report = this._queue[0]!;
      const outcome = await this._post(report);
      if (outcome === 'retry') {
        this._counters.failedAttempts++;
        return;
      }
      // Only now is it safe to forget the report: the server has it (or will never accept it).
      if (this._queue[0] === report) this._queue.shift();
      if (outcome === 'ok') this._counters.sent++;
      else this._counters.droppedReports++;
    }
  }

  private async _post(report: MetricsReport): Promise<'ok' | 'rejected' | 'retry'> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this._options.timeoutMs ?? 10_000);
    try {
      const res = await this._options.fetch(this._options.url, {
        method: 'POST',
        headers: { authorization: `Bearer ${this._options.sdkKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(report),
        signal: controller.signal,
      });
      // Drain the body so the connection can be reused.
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return 'ok';
      // 4xx other than 408/429 means the server will never take this report (bad key, invalid body): dropping it
      // is the only way not to block every later report behind it.
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) return 'rejected';
      return 'retry';
    } catch {
      return 'retry';
    } finally {
      clearTimeout(timer);
    }
  }
}
