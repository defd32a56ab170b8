/**
 * Batched, exactly-once ingestion of SDK metrics reports.
 *
 * Each request queues its report and waits; a batch (up to `maxBatchReports`, or whatever arrived within
 * `maxDelayMs`) is committed in ONE transaction: every report's (token, sdkId, seq) is inserted into `sdk_reports`
 * with `ON CONFLICT DO NOTHING` (a key already there, or earlier in the same batch → a duplicate, not counted again;
 * the primary key makes this exactly once however many replicas ingest), then the batch's rows are merged per
 * (environment, flag, variant, minute) with the stored ones and upserted. Only after COMMIT are the requests
 * answered, so an acknowledged report is stored; a failed commit answers 503 and the SDK retries the same seq.
 *
 * On PostgreSQL every replica ingests: the transaction takes the `ingest` lock (port.ts), so two replicas' batches
 * never read-merge-upsert the same minute rows at once (nothing is lost), while SDK-visible writes go on beside them.
 * Statements carry many rows each (sql-lists.ts): a batch is a handful of round trips, not one per row.
 *
 * Why batches: one fsync per batch instead of per report, and short transactions. One batch is in flight at a time
 * per replica, and the next is started from `setImmediate`, so admin writes and kills queued on the event loop run
 * between two batches: a burst of flushes delays a kill by at most one batch.
 *
 * Exactly-once is per SDK key: the dedupe record is (token id, sdkId, seq), so a report sent with one key (another
 * environment's, or a public client-side one) can never make another key's report count as a duplicate. Each key
 * may hold only a share of the queue (`maxQueuedShare`): one key's flood gets 429s of its own, not everyone's 503s.
 */
import { mergeHistogram, type SparseHistogram } from '@aviary/sdk/core';
import type { MetricsReport } from '@aviary/sdk/protocol';
import type { SqlValue, StorePort, Tx } from '../storage/port.js';
import { detachedInstruments, type IngestInstruments } from './prometheus.js';
import { chunked, flat, keysWhere, valuesList } from './sql-lists.js';
import { recordUsage } from '../lifecycle/usage-store.js';

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
 * batch's transaction (its statements only), so evidence is counted exactly once with the report.
 */
export interface EvidenceRecorder {
  record(tx: Tx, reports: FreshReport[], now: number): Promise<void>;
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

/** One report to count: its environment, the SDK key it came in with, and the report. */
export interface IngestItem {
  environment: string;
  source: ReportSource;
  report: MetricsReport;
}

/** A relay's forwarded batch (CONTRACT §10): the relay token and the batch's idempotency key. */
export interface RelayBatchKey {
  tokenId: string;
  batchKey: string;
}

/** What a committed relay batch produced: a replay of a key already committed counts nothing. */
export type RelayBatchResult = { replay: true } | { replay: false; fresh: boolean[] };

interface Pending extends IngestItem {
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
  /** The batch being committed (one at a time), or null. */
  private inflight: Promise<void> | null = null;
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
    private readonly store: StorePort,
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

  /** Commits everything queued now (used at shutdown and by tests); resolves once nothing is queued or in flight. */
  async drain(): Promise<void> {
    while (this.inflight || this.queue.length > 0) {
      if (this.inflight) await this.inflight;
      else await this.startBatch();
    }
  }

  /** Refuses new reports and commits the queued ones (resolves once they are committed or failed). */
  close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
    return this.drain();
  }

  /**
   * Commits a relay's forwarded batch (server/metrics/relay-batch-routes.ts) in ONE transaction of its own: the batch
   * key is inserted into `relay_batches` first (a key already there is a replay: nothing else is written), then the
   * reports are counted exactly as direct ones (`sdk_reports` dedupe per original key, `metrics_minute`, canary
   * evidence with each report's own key and side). Either all of it commits or none of it.
   */
  async commitRelayBatch(relay: RelayBatchKey, items: readonly IngestItem[]): Promise<RelayBatchResult> {
    if (this.closed) throw new IngestUnavailable('the server is shutting down');
    const started = performance.now();
    const out = await this.store.transaction(
      async (tx) => {
        const claimed = await tx.all<{ token_id: string }>(
          'INSERT INTO relay_batches (token_id, batch_key, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING token_id',
          [relay.tokenId, relay.batchKey, this.options.now()],
        );
        if (claimed.length === 0) return { replay: true as const, touched: [] as TouchedFlag[] };
        const { results, touched } = await this.write(tx, items);
        return { replay: false as const, results, touched };
      },
      { lock: 'ingest' },
    );
    this.m.batchSeconds.observe((performance.now() - started) / 1000);
    if (out.replay) {
      this.m.reports.inc({ result: 'duplicate' }, items.length);
      return { replay: true };
    }
    for (const fresh of out.results) this.m.reports.inc({ result: fresh ? 'counted' : 'duplicate' });
    if (out.touched.length > 0 && this.options.onCommitted) {
      try {
        this.options.onCommitted(out.touched);
      } catch {
        // Committed; a listener's failure must not turn it into an error for the relay.
      }
    }
    return { replay: false, fresh: out.results };
  }

  private scheduleNow(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (!this.immediate && !this.inflight) this.immediate = setImmediate(() => this.runBatch());
  }

  private runBatch(): void {
    this.timer = null;
    this.immediate = null;
    if (this.inflight) return; // the batch in flight schedules the next one when it is done
    void this.startBatch();
  }

  /** Takes the next batch off the queue and commits it; never rejects (a failure rejects the batch's reports). */
  private startBatch(): Promise<void> {
    const done = this.commitBatch().finally(() => {
      this.inflight = null;
      // Yield to the event loop before the next batch, so admin requests interleave with a burst.
      if (this.queue.length > 0 && !this.closed) this.scheduleNow();
    });
    this.inflight = done;
    return done;
  }

  private async commitBatch(): Promise<void> {
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
      ({ results, touched } = await this.store.transaction((tx) => this.write(tx, batch), { lock: 'ingest' }));
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

  /**
   * Which reports of the batch are fresh: their (token, sdkId, seq) is inserted now. One multi-row insert per chunk,
   * `RETURNING` the keys it inserted (a conflict inserts nothing and returns nothing); of two equal keys in one batch
   * only the first counts.
   */
  private async fresh(tx: Tx, batch: readonly IngestItem[], now: number): Promise<boolean[]> {
    const keyOf = (tokenId: string, sdkId: string, seq: number) => `${tokenId}\u0000${sdkId}\u0000${seq}`;
    const unique = new Map<string, SqlValue[]>();
    for (const { source, report } of batch) {
      const key = keyOf(source.tokenId, report.sdkId, report.seq);
      if (!unique.has(key)) unique.set(key, [source.tokenId, report.sdkId, report.seq, now]);
    }
    const inserted = new Set<string>();
    for (const chunk of chunked([...unique.values()])) {
      const rows = await tx.all<{ token_id: string; sdk_id: string; seq: number | string }>(
        `INSERT INTO sdk_reports (token_id, sdk_id, seq, received_at) VALUES ${valuesList(4, chunk.length)}
         ON CONFLICT DO NOTHING RETURNING token_id, sdk_id, seq`,
        flat(chunk),
      );
      for (const r of rows) inserted.add(keyOf(r.token_id, r.sdk_id, Number(r.seq)));
    }
    return batch.map(({ source, report }) => inserted.delete(keyOf(source.tokenId, report.sdkId, report.seq)));
  }

  /** The transaction body: awaits only the transaction's own statements. */
  private async write(tx: Tx, batch: readonly IngestItem[]): Promise<{ results: boolean[]; touched: TouchedFlag[] }> {
    const now = this.options.now();
    const rows = new Map<string, RowAcc>();
    const results = await this.fresh(tx, batch, now);
    const freshReports: FreshReport[] = [];
    batch.forEach(({ environment, source, report }, i) => {
      if (!results[i]) return;
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
    });
    const touched = new Map<string, TouchedFlag>();
    // The JSON columns (reasons, latency) are merged here, so read the stored rows the batch has JSON for (under the
    // ingest lock nobody else changes them before the upsert); the counters are added by the upsert itself.
    const withJson = [...rows.values()].filter((r) => r.reasons || r.latency);
    const stored = new Map<string, { reasons: string | null; latency: string | null }>();
    for (const chunk of chunked(withJson)) {
      const found = await tx.all<{
        environment: string;
        flag: string;
        variant: string;
        minute: number | string;
        reasons: string | null;
        latency: string | null;
      }>(
        `SELECT environment, flag, variant, minute, reasons, latency FROM metrics_minute WHERE ${keysWhere(ROW_KEY, chunk.length)}`,
        flat(chunk.map((r) => [r.environment, r.flag, r.variant, r.minute])),
      );
      for (const f of found) stored.set(`${f.environment}\u0000${f.flag}\u0000${f.variant}\u0000${Number(f.minute)}`, f);
    }
    // Rows with JSON to write and rows without (which leave the stored JSON alone) are upserted by two statements.
    const jsonRows: SqlValue[][] = [];
    const plainRows: SqlValue[][] = [];
    for (const [key, r] of rows) {
      let reasons = r.reasons;
      let latency = r.latency;
      if (reasons || latency) {
        const existing = stored.get(key);
        if (existing?.reasons) {
          const merged = JSON.parse(existing.reasons) as Record<string, number>;
          if (reasons) for (const [k, v] of Object.entries(reasons)) merged[k] = (merged[k] ?? 0) + v;
          reasons = merged;
        }
        if (existing?.latency)
          latency = latency
            ? mergeHistogram(JSON.parse(existing.latency) as SparseHistogram, latency)
            : (JSON.parse(existing.latency) as SparseHistogram);
        jsonRows.push([
          r.environment,
          r.flag,
          r.variant,
          r.minute,
          r.evaluations,
          JSON.stringify(reasons ?? {}),
          r.outcomes,
          r.errors,
          latency ? JSON.stringify(latency) : null,
          r.valueSum,
          r.valueCount,
        ]);
      } else {
        plainRows.push([r.environment, r.flag, r.variant, r.minute, r.evaluations, '{}', r.outcomes, r.errors, null, r.valueSum, r.valueCount]);
      }
      touched.set(`${r.environment}\u0000${r.flag}`, { environment: r.environment, flag: r.flag });
    }
    for (const chunk of chunked(jsonRows)) await tx.run(upsert(chunk.length, true), flat(chunk));
    for (const chunk of chunked(plainRows)) await tx.run(upsert(chunk.length, false), flat(chunk));
    if (this.evidence && freshReports.length > 0) await this.evidence.record(tx, freshReports, now);
    // Flag lifecycle (CONTRACT §15): one flag_usage upsert per (environment, flag, variant) of the batch.
    await recordUsage(tx, rows.values(), now);
    this.m.rows.inc(rows.size);
    return { results, touched: [...touched.values()] };
  }
}

const ROW_KEY = ['environment', 'flag', 'variant', 'minute'] as const;

/**
 * Upserts `n` rows of (environment, flag, variant, minute, evaluations, reasons, outcomes, errors, latency,
 * value_sum, value_count): counters are added to the stored ones; with `json`, reasons and latency are replaced by
 * the given (already merged) values, else the stored ones are kept.
 */
function upsert(n: number, json: boolean): string {
  return `INSERT INTO metrics_minute (environment, flag, variant, minute, evaluations, reasons, outcomes, errors, latency, value_sum, value_count)
    VALUES ${valuesList(11, n)}
    ON CONFLICT (environment, flag, variant, minute) DO UPDATE SET
      evaluations = metrics_minute.evaluations + excluded.evaluations,
      outcomes = metrics_minute.outcomes + excluded.outcomes,
      errors = metrics_minute.errors + excluded.errors,
      value_sum = metrics_minute.value_sum + excluded.value_sum,
      value_count = metrics_minute.value_count + excluded.value_count${json ? ',\n      reasons = excluded.reasons,\n      latency = excluded.latency' : ''}`;
}
