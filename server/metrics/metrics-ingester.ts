/**
 * Batched, exactly-once ingestion of SDK metrics reports.
 *
 * Each request queues its report and waits; a batch (up to `maxBatchReports`, or whatever arrived within
 * `maxDelayMs`) is committed in ONE synchronous transaction: for every report, `INSERT OR IGNORE` its (sdkId, seq)
 * into `sdk_reports` (already there → a duplicate, not counted again), then the batch's rows are merged per
 * (environment, flag, variant, minute) and upserted. Only after COMMIT are the requests answered, so an acknowledged
 * report is on disk; a failed commit answers 503 and the SDK retries the same seq.
 *
 * Why batches: one fsync per batch instead of per report, and short transactions. The next batch is started from
 * `setImmediate`, so admin writes and kills queued on the event loop run between two batches: a burst of flushes
 * delays a kill by at most one batch.
 *
 * Exactly-once is per SDK key: the dedupe record is (token id, sdkId, seq), so a report sent with one key (another
 * environment's, or a public client-side one) can never make another key's report count as a duplicate. Each key
 * may hold only a share of the queue (`maxQueuedShare`): one key's flood gets 429s of its own, not everyone's 503s.
 */
import type Database from 'better-sqlite3';
import { mergeHistogram, type SparseHistogram } from '@aviary/sdk/core';
import type { MetricsReport } from '@aviary/sdk/protocol';
import { detachedInstruments, type IngestInstruments } from './prometheus.js';

/** What a committed report produced. */
export interface IngestReceipt {
  accepted: true;
  /** This (sdkId, seq) had been counted before. */
  duplicate: boolean;
}

/** A (environment, flag) pair that received new rows in a batch. */
export interface TouchedFlag {
  environment: string;
  flag: string;
}

/** Who sent a report: the SDK key (token id) and whether it is a client-side (public) key. */
export interface ReportSource {
  tokenId: string;
  clientSide: boolean;
}

/** One fresh (first-time) report of a batch, handed to the evidence recorder inside the batch's transaction. */
export interface FreshReport {
  environment: string;
  source: ReportSource;
  sdkId: string;
  stats: MetricsReport['stats'];
}

/**
 * Records canary evidence from the fresh reports of a batch (server/canary/evidence-store.ts). Called inside the
 * batch's transaction, synchronously, so evidence is counted exactly once with the report.
 */
export interface EvidenceRecorder {
  record(reports: FreshReport[], now: number): void;
}

/** Options of {@link MetricsIngester}. */
export interface MetricsIngesterOptions {
  now: () => number;
  /** Reports per transaction. Default 256. */
  maxBatchReports?: number;
  /** How long the first report of a batch waits for company (ms). Default 20: fewer, larger commits (each one fsyncs). */
  maxDelayMs?: number;
  /** Reports waiting before new ones are refused with 503 (the SDK keeps and retries them). Default 20,000. */
  maxQueuedReports?: number;
  /** Stats rows per transaction: a batch closes early when its reports hold this many. Default 2,000 (about 15 ms of the event loop here, with latency histograms to merge): one transaction is the longest a kill waits behind ingestion, unless one report alone holds more. */
  maxBatchRows?: number;
  /** Stats rows waiting before new reports are refused with 503 (bounds memory). Default 500,000. */
  maxQueuedRows?: number;
  /**
   * The share of `maxQueuedReports` and `maxQueuedRows` one SDK key may hold; beyond it that key's reports are
   * refused with 429 (the SDK retries them) while other keys' are still queued. Default 0.25.
   */
  maxQueuedShare?: number;
  /** Where the ingest counters go (default: a private registry). */
  instruments?: IngestInstruments;
  /** Called after every committed batch with the flags that got new rows (the canary guard listens). */
  onCommitted?: (touched: TouchedFlag[]) => void;
}

/** Thrown by `submit` when the queue is full or the ingester is closed; the route answers 503. */
export class IngestUnavailable extends Error {}

/** Thrown by `submit` when the sending key holds its whole share of the queue; the route answers 429. */
export class IngestKeyBusy extends Error {
  constructor(
    message: string,
    readonly limit: 'queued-reports-per-key' | 'queued-rows-per-key',
    readonly allowance: number,
  ) {
    super(message);
  }
}

interface Pending {
  environment: string;
  source: ReportSource;
  report: MetricsReport;
  resolve: (r: IngestReceipt) => void;
  reject: (e: unknown) => void;
}

interface RowAcc {
  environment: string;
  flag: string;
  variant: string;
  minute: number;
  evaluations: number;
  reasons: Record<string, number> | null;
  outcomes: number;
  errors: number;
  latency: SparseHistogram | null;
  valueSum: number;
  valueCount: number;
}

export class MetricsIngester {
  private queue: Pending[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private immediate: ReturnType<typeof setImmediate> | null = null;
  private closed = false;
  private readonly stmts;
  private readonly maxBatch: number;
  private readonly maxDelay: number;
  private readonly maxQueued: number;
  private readonly maxBatchRows: number;
  private readonly maxQueuedRows: number;
  private queuedRows = 0;
  private readonly maxKeyReports: number;
  private readonly maxKeyRows: number;
  /** Reports and rows waiting, per SDK key. */
  private readonly perKey = new Map<string, { reports: number; rows: number }>();
  private readonly m: IngestInstruments;
  /** Set by the canary runtime (server/canary/canary-setup.ts). */
  evidence: EvidenceRecorder | null = null;

  constructor(
    private readonly sqlite: Database.Database,
    private readonly options: MetricsIngesterOptions,
  ) {
    this.maxBatch = options.maxBatchReports ?? 256;
    this.maxDelay = options.maxDelayMs ?? 20;
    this.maxQueued = options.maxQueuedReports ?? 20_000;
    this.maxBatchRows = options.maxBatchRows ?? 2_000;
    this.maxQueuedRows = options.maxQueuedRows ?? 500_000;
    const share = options.maxQueuedShare ?? 0.25;
    this.maxKeyReports = Math.max(1, Math.floor(this.maxQueued * share));
    this.maxKeyRows = Math.max(1, Math.floor(this.maxQueuedRows * share));
    this.m = options.instruments ?? detachedInstruments();
    this.stmts = {
      dedupe: sqlite.prepare('INSERT OR IGNORE INTO sdk_reports (token_id, sdk_id, seq, received_at) VALUES (?, ?, ?, ?)'),
      read: sqlite.prepare<[string, string, string, number], { reasons: string | null; latency: string | null }>(
        'SELECT reasons, latency FROM metrics_minute WHERE environment = ? AND flag = ? AND variant = ? AND minute = ?',
      ),
      // reasons/latency are JSON merged in JS; @reasons/@latency are null when this batch has none, keeping the stored value.
      upsert: sqlite.prepare(
        `INSERT INTO metrics_minute (environment, flag, variant, minute, evaluations, reasons, outcomes, errors, latency, value_sum, value_count)
         VALUES (@environment, @flag, @variant, @minute, @evaluations, COALESCE(@reasons, '{}'), @outcomes, @errors, @latency, @valueSum, @valueCount)
         ON CONFLICT (environment, flag, variant, minute) DO UPDATE SET
           evaluations = evaluations + excluded.evaluations,
           reasons = CASE WHEN @reasons IS NULL THEN reasons ELSE excluded.reasons END,
           outcomes = outcomes + excluded.outcomes,
           errors = errors + excluded.errors,
           latency = CASE WHEN @latency IS NULL THEN latency ELSE excluded.latency END,
           value_sum = value_sum + excluded.value_sum,
           value_count = value_count + excluded.value_count`,
      ),
    };
  }

  /** Reports waiting for their batch. */
  get queued(): number {
    return this.queue.length;
  }

  /**
   * Queues a validated (and screened) report of `environment`, the SDK key's, sent with `source`; resolves once its
   * batch has committed.
   */
  submit(environment: string, report: MetricsReport, source: ReportSource): Promise<IngestReceipt> {
    if (this.closed) return Promise.reject(new IngestUnavailable('the server is shutting down'));
    if (this.queue.length >= this.maxQueued || (this.queuedRows > 0 && this.queuedRows + report.stats.length > this.maxQueuedRows)) {
      this.m.reports.inc({ result: 'refused' });
      return Promise.reject(new IngestUnavailable('too many metrics reports waiting; retry later'));
    }
    const mine = this.perKey.get(source.tokenId) ?? { reports: 0, rows: 0 };
    if (mine.reports >= this.maxKeyReports) {
      this.m.reports.inc({ result: 'refused' });
      return Promise.reject(
        new IngestKeyBusy(
          `this SDK key already has ${mine.reports} reports waiting to be stored (limit ${this.maxKeyReports} per key); retry later`,
          'queued-reports-per-key',
          this.maxKeyReports,
        ),
      );
    }
    if (mine.rows > 0 && mine.rows + report.stats.length > this.maxKeyRows) {
      this.m.reports.inc({ result: 'refused' });
      return Promise.reject(
        new IngestKeyBusy(
          `this SDK key already has ${mine.rows} rows waiting to be stored (limit ${this.maxKeyRows} per key); retry later`,
          'queued-rows-per-key',
          this.maxKeyRows,
        ),
      );
    }
    return new Promise<IngestReceipt>((resolve, reject) => {
      this.queue.push({ environment, source, report, resolve, reject });
      this.queuedRows += report.stats.length;
      mine.reports++;
      mine.rows += report.stats.length;
      this.perKey.set(source.tokenId, mine);
      this.m.queued.set(this.queue.length);
      if (this.queue.length >= this.maxBatch || this.queuedRows >= this.maxBatchRows) this.scheduleNow();
      else if (!this.timer && !this.immediate) this.timer = setTimeout(() => this.runBatch(), this.maxDelay);
    });
  }

  /** Commits everything queued now (used at shutdown and by tests). */
  drain(): void {
    while (this.queue.length > 0) this.commitBatch();
  }

  /** Refuses new reports and commits the queued ones. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
    this.drain();
  }

  private scheduleNow(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (!this.immediate) this.immediate = setImmediate(() => this.runBatch());
  }

  private runBatch(): void {
    this.timer = null;
    this.immediate = null;
    this.commitBatch();
    // Yield to the event loop before the next batch, so admin requests interleave with a burst.
    if (this.queue.length > 0) this.scheduleNow();
  }

  private commitBatch(): void {
    // Up to maxBatch reports and about maxBatchRows rows (at least one report), so one transaction stays short.
    let take = 0;
    let rows = 0;
    while (take < this.queue.length && take < this.maxBatch && (take === 0 || rows + this.queue[take]!.report.stats.length <= this.maxBatchRows)) {
      rows += this.queue[take]!.report.stats.length;
      take++;
    }
    const batch = this.queue.splice(0, take);
    this.queuedRows -= rows;
    for (const p of batch) {
      const mine = this.perKey.get(p.source.tokenId);
      if (!mine) continue;
      mine.reports--;
      mine.rows -= p.report.stats.length;
      if (mine.reports <= 0) this.perKey.delete(p.source.tokenId);
    }
    this.m.queued.set(this.queue.length);
    if (batch.length === 0) return;
    const started = performance.now();
    let results: boolean[];
    let touched: TouchedFlag[];
    try {
      ({ results, touched } = this.sqlite.transaction(() => this.write(batch)).immediate());
    } catch (err) {
      this.m.reports.inc({ result: 'failed' }, batch.length);
      for (const p of batch) p.reject(err);
      return;
    }
    const m = this.m;
    m.batchSeconds.observe((performance.now() - started) / 1000);
    batch.forEach((p, i) => {
      const duplicate = !results[i];
      m.reports.inc({ result: duplicate ? 'duplicate' : 'counted' });
      p.resolve({ accepted: true, duplicate });
    });
    if (touched.length > 0 && this.options.onCommitted) {
      try {
        this.options.onCommitted(touched);
      } catch {
        // The batch is committed; a listener's failure must not turn it into errors for the SDKs.
      }
    }
  }

  /** The transaction body: synchronous on purpose (see STYLE: an await would commit early). */
  private write(batch: Pending[]): { results: boolean[]; touched: TouchedFlag[] } {
    const now = this.options.now();
    const rows = new Map<string, RowAcc>();
    const results: boolean[] = [];
    const freshReports: FreshReport[] = [];
    for (const { environment, source, report } of batch) {
      const fresh = this.stmts.dedupe.run(source.tokenId, report.sdkId, report.seq, now).changes === 1;
      results.push(fresh);
      if (!fresh) continue;
      if (this.evidence) freshReports.push({ environment, source, sdkId: report.sdkId, stats: report.stats });
      for (const s of report.stats) {
        const variant = s.variant ?? '';
        const key = `${environment}\u0000${s.flag}\u0000${variant}\u0000${s.minute}`;
        let acc = rows.get(key);
        if (!acc) {
          acc = {
            environment,
            flag: s.flag,
            variant,
            minute: s.minute,
            evaluations: 0,
            reasons: null,
            outcomes: 0,
            errors: 0,
            latency: null,
            valueSum: 0,
            valueCount: 0,
          };
          rows.set(key, acc);
        }
        acc.evaluations += s.evaluations;
        acc.outcomes += s.outcomes;
        acc.errors += s.errors;
        acc.valueSum += s.valueSum ?? 0;
        acc.valueCount += s.valueCount ?? 0;
        if (s.reasons) {
          acc.reasons ??= {};
          for (const [k, v] of Object.entries(s.reasons)) acc.reasons[k] = (acc.reasons[k] ?? 0) + (v ?? 0);
        }
        if (s.latency) mergeHistogram((acc.latency ??= {}), s.latency);
      }
    }
    const touched = new Map<string, TouchedFlag>();
    for (const r of rows.values()) {
      let reasons = r.reasons;
      let latency = r.latency;
      // Read the stored row only when this batch has JSON to merge into it.
      if (reasons || latency) {
        const existing = this.stmts.read.get(r.environment, r.flag, r.variant, r.minute);
        if (reasons && existing?.reasons) {
          const stored = JSON.parse(existing.reasons) as Record<string, number>;
          for (const [k, v] of Object.entries(reasons)) stored[k] = (stored[k] ?? 0) + v;
          reasons = stored;
        }
        if (latency && existing?.latency) latency = mergeHistogram(JSON.parse(existing.latency) as SparseHistogram, latency);
      }
      this.stmts.upsert.run({
        environment: r.environment,
        flag: r.flag,
        variant: r.variant,
        minute: r.minute,
        evaluations: r.evaluations,
        reasons: reasons ? JSON.stringify(reasons) : null,
        outcomes: r.outcomes,
        errors: r.errors,
        latency: latency ? JSON.stringify(latency) : null,
        valueSum: r.valueSum,
        valueCount: r.valueCount,
      });
      touched.set(`${r.environment}\u0000${r.flag}`, { environment: r.environment, flag: r.flag });
    }
    if (this.evidence && freshReports.length > 0) this.evidence.record(freshReports, now);
    this.m.rows.inc(rows.size);
    return { results, touched: [...touched.values()] };
  }
}
