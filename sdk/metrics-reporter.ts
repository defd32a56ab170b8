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
  private _sending: Promise<void> | undefined;
  private readonly _counts = { sent: 0, failedAttempts: 0, droppedReports: 0 };

  constructor(private readonly _options: MetricsReporterOptions) {}

  get stats(): ReporterStats {
    return { ...this._counts, pending: this._queue.length };
  }

  /** Cuts the given stats into reports (each with the next seq) and queues them. */
  enqueue(stats: VariantStats[]): void {
    const o = this._options;
    const per = o.maxStatsPerReport ?? 5_000;
    for (let i = 0; i < stats.length; i += per) {
      // `app` may be undefined: JSON leaves it out.
      this._queue.push({
        sdkId: o.sdkId,
        seq: ++this._seq,
        app: o.app,
        sdk: { name: '@aviary/sdk', version: o.sdkVersion },
        stats: stats.slice(i, i + per),
      });
    }
    while (this._queue.length > (o.maxPendingReports ?? 32)) {
      this._queue.shift();
      this._counts.droppedReports++;
    }
  }

  /**
   * Sends queued reports in order until the queue is empty or a send fails (then the rest waits for the next flush).
   * Resolves to true when nothing is left pending. Concurrent calls share one sender.
   */
  async send(): Promise<boolean> {
    while (this._sending) await this._sending;
    await (this._sending = this._drainQueue().finally(() => (this._sending = undefined)));
    return this._queue.length === 0;
  }

  private async _drainQueue(): Promise<void> {
    for (let report = this._queue[0]; report !== undefined; report = this._queue[0]) {
      const outcome = await this._post(report);
      if (outcome === 'retry') {
        this._counts.failedAttempts++;
        return;
      }
      // Only now is it safe to forget the report: the server has it (or will never accept it).
      if (this._queue[0] === report) this._queue.shift();
      this._counts[outcome === 'ok' ? 'sent' : 'droppedReports']++;
    }
  }

  private async _post(report: MetricsReport): Promise<'ok' | 'rejected' | 'retry'> {
    const o = this._options;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), o.timeoutMs ?? 10_000);
    try {
      const res = await o.fetch(o.url, {
        method: 'POST',
        headers: { authorization: `Bearer ${o.sdkKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(report),
        signal: controller.signal,
      });
      // Drain the body so the connection can be reused.
      await res.arrayBuffer().catch(() => undefined);
      // 4xx other than 408/429 means the server will never take this report (bad key, invalid body): dropping it
      // is the only way not to block every later report behind it.
      const status = res.status;
      return res.ok ? 'ok' : status >= 400 && status < 500 && status !== 408 && status !== 429 ? 'rejected' : 'retry';
    } catch {
      return 'retry';
    } finally {
      clearTimeout(timer);
    }
  }
}
