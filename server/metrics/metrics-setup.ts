/**
 * Wires metrics ingestion into an app: decorates `app.metrics` (ingester, store, instruments), runs the retention
 * policy, and drains the ingestion queue before the server stops (every report acknowledged is committed; reports
 * arriving during shutdown get 503 and are retried by their SDK).
 *
 * Every replica ingests; retention runs only on the replica that owns the `retention` duty (`app.duties`, checked at
 * each run), so replicas do not delete the same rows at once.
 */
import type { FastifyInstance } from 'fastify';
import { FlagCatalog } from './flag-catalog.js';
import { DEFAULT_KEY_QUOTAS, KeyQuotas, type KeyQuotaLimits } from './key-quotas.js';
import { MetricsIngester, type MetricsIngesterOptions, type TouchedFlag } from './metrics-ingester.js';
import { MetricsStore } from './metrics-store.js';
import { createIngestInstruments, type IngestInstruments } from './prometheus.js';
import { DEFAULT_REPORT_LIMITS, type ReportLimits } from './report-validation.js';

/** Metrics options of buildApp. */
export interface MetricsOptions
  extends Pick<MetricsIngesterOptions, 'maxBatchReports' | 'maxDelayMs' | 'maxQueuedReports' | 'maxBatchRows' | 'maxQueuedRows' | 'maxQueuedShare'> {
  /** What one report may hold (clock-skew window, counts per row). Default `DEFAULT_REPORT_LIMITS` (main.ts passes the `AVIARY_METRICS_*` variables). */
  reportLimits?: Partial<ReportLimits>;
  /** Per-SDK-key rows and bytes per minute. Default `DEFAULT_KEY_QUOTAS`. */
  keyQuotas?: Partial<KeyQuotaLimits>;
  /** Per-minute rows older than this many days are deleted (`AVIARY_METRICS_RETENTION_DAYS`). Default 30. */
  retentionDays?: number;
  /** How long (hours) a report's (sdkId, seq) is remembered for exactly-once. Default 24. */
  dedupeHours?: number;
  /** How often retention runs (ms). Default 10 minutes. */
  retentionIntervalMs?: number;
}

/** `app.metrics`. */
export interface MetricsRuntime {
  ingester: MetricsIngester;
  store: MetricsStore;
  instruments: IngestInstruments;
  /** Which flags and variants each environment has (report screening). */
  catalog: FlagCatalog;
  /** Per-SDK-key ingest quotas. */
  quotas: KeyQuotas;
  /** What one report may hold. */
  reportLimits: ReportLimits;
  /**
   * Applies the retention policy now, in one go (the timer does it in chunks, on the duty's owner only); resolves
   * with the per-minute rows deleted.
   */
  prune(): Promise<number>;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: MetricsRuntime;
  }
}

/**
 * Decorates `app.metrics`. `onCommitted` is called after every committed batch with the flags that received rows
 * (the canary guard subscribes). Call before registering routes.
 */
export function setupMetrics(app: FastifyInstance, options: MetricsOptions = {}, onCommitted?: (touched: TouchedFlag[]) => void): MetricsRuntime {
  const instruments = createIngestInstruments(app.prometheus.registry);
  const store = new MetricsStore(app.store);
  const catalog = new FlagCatalog(app.snapshots);
  const dedupeMs = (options.dedupeHours ?? 24) * 3_600_000;
  const reportLimits: ReportLimits = {
    maxFutureMs: options.reportLimits?.maxFutureMs ?? DEFAULT_REPORT_LIMITS.maxFutureMs,
    // A report older than the exactly-once horizon could be one already counted whose record has expired.
    maxPastMs: options.reportLimits?.maxPastMs ?? dedupeMs,
    maxCountServerSide: options.reportLimits?.maxCountServerSide ?? DEFAULT_REPORT_LIMITS.maxCountServerSide,
    maxCountClientSide: options.reportLimits?.maxCountClientSide ?? DEFAULT_REPORT_LIMITS.maxCountClientSide,
  };
  const quotas = new KeyQuotas(
    {
      rowsPerMinute: options.keyQuotas?.rowsPerMinute ?? DEFAULT_KEY_QUOTAS.rowsPerMinute,
      bytesPerMinute: options.keyQuotas?.bytesPerMinute ?? DEFAULT_KEY_QUOTAS.bytesPerMinute,
    },
    app.now,
  );
  const ingester = new MetricsIngester(app.store, {
    now: app.now,
    instruments,
    ...(options.maxBatchReports ? { maxBatchReports: options.maxBatchReports } : {}),
    ...(options.maxDelayMs !== undefined ? { maxDelayMs: options.maxDelayMs } : {}),
    ...(options.maxQueuedReports ? { maxQueuedReports: options.maxQueuedReports } : {}),
    ...(options.maxBatchRows ? { maxBatchRows: options.maxBatchRows } : {}),
    ...(options.maxQueuedRows ? { maxQueuedRows: options.maxQueuedRows } : {}),
    ...(options.maxQueuedShare ? { maxQueuedShare: options.maxQueuedShare } : {}),
    ...(onCommitted ? { onCommitted } : {}),
  });
  const keepMs = (options.retentionDays ?? 30) * 86_400_000;
  // One chunk per event-loop turn, so retention never holds up a kill or an ingest batch for long. Besides old
  // minutes: minutes beyond the clock-skew window (stored before it was enforced) and flags that no longer exist.
  const pruneStep = () => store.pruneChunk(app.now(), keepMs, dedupeMs, reportLimits.maxFutureMs);
  let closed = false;
  // One pass at a time (the store's orphan scan keeps a cursor): an explicit prune() waits for the timer's pass.
  let passes: Promise<unknown> = Promise.resolve();
  const serially = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = passes.then(fn, fn);
    passes = next.catch(() => undefined);
    return next;
  };
  const prune = () =>
    serially(async () => {
      let deleted = 0;
      for (;;) {
        const step = await pruneStep();
        deleted += step.minutes;
        if (step.minutes === 0 && step.reports === 0 && !step.more) break;
      }
      instruments.retentionDeleted.inc(deleted);
      return deleted;
    });
  let pruning = false;
  const pruneInBackground = () => {
    if (pruning || closed || !app.duties.owns('retention')) return;
    pruning = true;
    void serially(async () => {
      try {
        for (;;) {
          // Checked before every step: a replica that lost the duty stops at once (another has taken it over).
          if (closed || !app.duties.owns('retention')) break;
          const r = await pruneStep();
          instruments.retentionDeleted.inc(r.minutes);
          if (r.minutes === 0 && r.reports === 0 && !r.more) break;
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      } catch (err) {
        app.log.error({ err }, 'metrics retention failed');
      } finally {
        pruning = false;
      }
    });
  };
  const runtime: MetricsRuntime = { ingester, store, instruments, prune, catalog, quotas, reportLimits };
  app.decorate('metrics', runtime);

  const timer = setInterval(pruneInBackground, options.retentionIntervalMs ?? 600_000);
  timer.unref();
  app.addHook('onReady', async () => pruneInBackground());
  // preClose runs while the database is still open: commit what was acknowledged-to-be before closing.
  app.addHook('preClose', async () => {
    closed = true;
    clearInterval(timer);
    await ingester.close();
    await passes;
    catalog.close();
  });
  return runtime;
}
