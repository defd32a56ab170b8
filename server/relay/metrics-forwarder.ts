/**
 * The relay's side of metrics exactly once (CONTRACT §5, §10; docs/relay.md "Metrics exactly once").
 *
 * `accept()` takes a validated SDK report (or `acceptMany()` a batch from a downstream relay) and resolves only once
 * it is durable in a journal in the relay's cache dir: appends are group-committed (every report that arrives while
 * one write + fdatasync is running shares the next one). Every period the journal segment is cut into batches; each
 * batch is written to its own file with its sequence number (the next number persisted first) before it is sent, so
 * it is always re-sent with the SAME `Idempotency-Key: <relay instance id>:<seq>` (the instance id is persisted in
 * the cache dir) and the SAME reports, after a failure (exponential backoff) or a restart. Upstream records the key
 * in the same transaction as the counts (server/metrics/relay-batch-routes.ts), and every report also keeps its own
 * (SDK key, sdkId, seq) dedupe there, so a report journalled twice (an SDK retry, a downstream relay's replay) is
 * still counted once. A batch file is deleted once upstream acknowledged it (or refused it for good: counted as
 * dropped).
 *
 * Files in `<dir>`: `instance-id`, `next-seq`, `journal-<segment>.ndjson` (appended), `batch-<seq>.json` (written
 * once, atomically), `cut-<segment>.json` (a cut's marker, written after all its batches: the segments it consumed).
 * At start, batches of a cut without its marker are deleted (they were never sent), segments a marker names are
 * deleted, and the rest are cut into batches at once. Memory holds only the current segment's reports (a period's worth) and the
 * batch in flight; disk and the reports waiting are bounded (`maxPendingReports`, `maxDiskBytes`): beyond them
 * `accept()` refuses (`ForwarderFull`, counted as dropped `full`) and the relay answers 503, so the SDK keeps its
 * report and retries.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { MetricsReport } from '@aviary/sdk/protocol';
import { Counter, Gauge, type Registry } from 'prom-client';

/** One report as forwarded: the SDK key (token id) it came in with, its environment, the original report. */
export interface ForwardedReport {
  key: string;
  environment: string;
  report: MetricsReport;
}

/** Who sent a report to the relay: the SDK key's token id and its environment (the relay's SDK principal). */
export interface ReportPrincipal {
  tokenId: string;
  environment: string;
}

export interface MetricsForwarderOptions {
  /** Where the journal and batches live (e.g. `<AVIARY_RELAY_CACHE>/metrics`). */
  dir: string;
  /** Base URL of the upstream server or relay. */
  upstream: string;
  /** The relay token (`Authorization: Bearer`). */
  relayToken: string;
  /** How often the journal is cut into batches and sent (ms). Default 2,000. */
  periodMs?: number;
  /** Reports per batch. Default 1,000 (upstream takes at most 2,000). */
  maxBatchReports?: number;
  /** Stats rows per batch. Default 10,000 (upstream takes at most 20,000). */
  maxBatchRows?: number;
  /** Bytes per batch (JSON). Default 8 MiB (upstream takes at most 16 MiB). */
  maxBatchBytes?: number;
  /** Reports journalled and not yet acknowledged upstream before `accept` refuses. Default 200,000. */
  maxPendingReports?: number;
  /** Bytes of journal and batch files before `accept` refuses. Default 256 MiB. */
  maxDiskBytes?: number;
  /** First and longest wait between two attempts of a failed batch (ms). Default 500 and 30,000. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Where the counters go (the relay's `/metrics` registry). */
  registry?: Registry;
  /** Called on upstream failures and refusals (the relay's logger). */
  onEvent?: (event: { kind: 'retry' | 'refused'; seq: number; status?: number; detail: string }) => void;
}

/** `accept()` refused: the journal is at its bound (upstream down for long). The relay answers 503. */
export class ForwarderFull extends Error {}

interface BatchFile {
  seq: number;
  /** The highest journal segment this batch was cut from. */
  segment: number;
  reports: ForwardedReport[];
}

const SEGMENT = /^journal-(\d+)\.ndjson$/;
const BATCH = /^batch-(\d+)\.json$/;
const CUT = /^cut-(\d+)\.json$/;

export class MetricsForwarder {
  readonly instanceId: string;
  private nextSeq: number;
  private segment: number;
  private fh: FileHandle | null = null;
  /** Reports durable in the current segment. */
  private current: ForwardedReport[] = [];
  private currentBytes = 0;
  /** Lines waiting for the next group commit, with their waiters. */
  private buffered: { line: string; report: ForwardedReport; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private bufferedBytes = 0;
  /** File operations (appends, cuts) run one at a time on this chain. */
  private chain: Promise<void> = Promise.resolve();
  private writing = false;
  /** Batches cut and not yet acknowledged: seq → report count and file bytes. */
  private readonly outbox = new Map<number, { reports: number; bytes: number }>();
  private sending: Promise<void> | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private backoff: number;
  private closed = false;
  private readonly o: Required<Omit<MetricsForwarderOptions, 'registry' | 'onEvent'>> & Pick<MetricsForwarderOptions, 'onEvent'>;
  private readonly m: ReturnType<typeof instruments>;

  private constructor(options: MetricsForwarderOptions, instanceId: string, nextSeq: number, segment: number) {
    this.o = {
      periodMs: 2_000,
      maxBatchReports: 1_000,
      maxBatchRows: 10_000,
      maxBatchBytes: 8 * 1024 * 1024,
      maxPendingReports: 200_000,
      maxDiskBytes: 256 * 1024 * 1024,
      minBackoffMs: 500,
      maxBackoffMs: 30_000,
      ...options,
    };
    this.instanceId = instanceId;
    this.nextSeq = nextSeq;
    this.segment = segment;
    this.backoff = this.o.minBackoffMs;
    this.m = instruments(options.registry);
  }

  /** Opens (or recovers) the journal in `options.dir` and starts the period timer. */
  static async open(options: MetricsForwarderOptions): Promise<MetricsForwarder> {
    const dir = options.dir;
    await mkdir(dir, { recursive: true });
    let instanceId = (await readFile(join(dir, 'instance-id'), 'utf8').catch(() => '')).trim();
    if (!/^[A-Za-z0-9-]{8,64}$/.test(instanceId)) {
      instanceId = randomUUID();
      await writeAtomically(dir, 'instance-id', instanceId);
    }
    const names = await readdir(dir);
    const batchSeqs = names.flatMap((n) => (BATCH.exec(n) ? [Number(BATCH.exec(n)![1])] : [])).sort((a, b) => a - b);
    const segments = names.flatMap((n) => (SEGMENT.exec(n) ? [Number(SEGMENT.exec(n)![1])] : [])).sort((a, b) => a - b);
    // A cut is complete once its marker (`cut-<segment>`: the segments it consumed) exists; its segments can go.
    const markers = names.filter((n) => CUT.test(n));
    const consumed = new Set<number>();
    for (const m of markers) for (const s of JSON.parse(await readFile(join(dir, m), 'utf8')) as number[]) consumed.add(s);
    const storedSeq = Number((await readFile(join(dir, 'next-seq'), 'utf8').catch(() => '0')).trim()) || 0;
    const nextSeq = Math.max(storedSeq, (batchSeqs.at(-1) ?? -1) + 1);
    const batches: { seq: number; reports: number; bytes: number }[] = [];
    for (const seq of batchSeqs) {
      const file = join(dir, `batch-${seq}.json`);
      const text = await readFile(file, 'utf8');
      const parsed = JSON.parse(text) as BatchFile;
      if (segments.includes(parsed.segment) && !consumed.has(parsed.segment)) {
        // Part of a cut that did not finish (no marker): never sent (batches are sent only after the marker); its
        // segment is still there and is cut again below.
        await unlink(file);
        continue;
      }
      batches.push({ seq, reports: parsed.reports.length, bytes: Buffer.byteLength(text) });
    }
    // Segments already cut (a crash between the marker and deleting the segment) go; the rest are cut now.
    const recovered: ForwardedReport[] = [];
    const recoveredSegments: number[] = [];
    for (const s of segments) {
      if (consumed.has(s)) continue;
      recoveredSegments.push(s);
      const text = await readFile(join(dir, `journal-${s}.ndjson`), 'utf8');
      // Only whole lines: a torn last line was never acknowledged (its fdatasync had not returned).
      for (const line of text.split('\n')) {
        if (!line) continue;
        try {
          recovered.push(JSON.parse(line) as ForwardedReport);
        } catch {
          // torn
        }
      }
    }
    const f = new MetricsForwarder(options, instanceId, nextSeq, Math.max(-1, ...segments, ...consumed) + 1);
    for (const b of batches) f.outbox.set(b.seq, { reports: b.reports, bytes: b.bytes });
    if (recovered.length > 0) await f.writeBatches(recovered, recoveredSegments);
    for (const s of segments) await unlink(join(dir, `journal-${s}.ndjson`)).catch(() => undefined);
    for (const m of await readdir(dir)) if (CUT.test(m)) await unlink(join(dir, m));
    await syncDir(dir);
    f.fh = await open(join(dir, `journal-${f.segment}.ndjson`), 'a');
    f.gauge();
    f.timer = setInterval(() => void f.tick(), f.o.periodMs);
    f.timer.unref();
    if (f.outbox.size > 0) f.kick();
    return f;
  }

  /** Reports journalled and not yet acknowledged upstream. */
  get pending(): number {
    let n = this.current.length + this.buffered.length;
    for (const b of this.outbox.values()) n += b.reports;
    return n;
  }

  private get diskBytes(): number {
    let n = this.currentBytes + this.bufferedBytes;
    for (const b of this.outbox.values()) n += b.bytes;
    return n;
  }

  /** Journals one SDK report; resolves once it is durable (the relay's `MetricsSink`, server/relay/metrics-sink.ts). */
  accept(principal: ReportPrincipal, report: MetricsReport): Promise<{ accepted: true }> {
    return this.acceptMany([{ key: principal.tokenId, environment: principal.environment, report }]).then(() => ({ accepted: true as const }));
  }

  /** Journals reports (a downstream relay's batch, as one unit); resolves once all are durable. */
  acceptMany(reports: readonly ForwardedReport[]): Promise<void> {
    if (this.closed) return Promise.reject(new ForwarderFull('the relay is shutting down'));
    const lines = reports.map((r) => `${JSON.stringify(r)}\n`);
    const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l), 0);
    if (this.pending + reports.length > this.o.maxPendingReports || this.diskBytes + bytes > this.o.maxDiskBytes) {
      this.m.dropped.inc({ reason: 'full' }, reports.length);
      return Promise.reject(
        new ForwarderFull(`the relay holds ${this.pending} reports not yet acknowledged upstream (limit ${this.o.maxPendingReports}); retry later`),
      );
    }
    const all = reports.map(
      (report, i) =>
        new Promise<void>((resolve, reject) => {
          this.buffered.push({ line: lines[i]!, report, resolve, reject });
        }),
    );
    this.bufferedBytes += bytes;
    this.gauge();
    if (!this.writing) {
      this.writing = true;
      this.chain = this.chain.then(() => this.groupCommit());
    }
    return Promise.all(all).then(() => undefined);
  }

  /**
   * One group commit: everything buffered now, one write + fdatasync. What arrives meanwhile waits for the next
   * round, queued behind any cut already waiting (so a steady stream of reports never holds a cut off).
   */
  private async groupCommit(): Promise<void> {
    const round = this.buffered;
    const bytes = this.bufferedBytes;
    this.buffered = [];
    this.bufferedBytes = 0;
    try {
      await this.fh!.write(round.map((r) => r.line).join(''));
      await this.fh!.datasync();
      for (const r of round) this.current.push(r.report);
      this.currentBytes += bytes;
      for (const r of round) r.resolve();
    } catch (err) {
      for (const r of round) r.reject(err);
    }
    if (this.buffered.length > 0) this.chain = this.chain.then(() => this.groupCommit());
    else this.writing = false;
  }

  /** The period: cut the current segment into batches, then send. */
  private async tick(): Promise<void> {
    if (this.closed) return;
    await this.cut();
    this.kick();
  }

  /** Cuts the current segment (what is durable now) into batch files and starts a new segment. */
  cut(): Promise<void> {
    const run = async () => {
      if (this.current.length === 0) return;
      const reports = this.current;
      const segment = this.segment;
      this.current = [];
      this.currentBytes = 0;
      await this.fh!.close();
      this.segment++;
      this.fh = await open(join(this.o.dir, `journal-${this.segment}.ndjson`), 'a');
      await this.writeBatches(reports, [segment]);
      await unlink(join(this.o.dir, `journal-${segment}.ndjson`));
      await syncDir(this.o.dir);
      await unlink(join(this.o.dir, `cut-${segment}.json`));
    };
    const next = this.chain.then(run);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /**
   * Splits reports (of `segments`) into batches within the limits, persists the next seq, then each batch file, then
   * the cut's marker; only then are the batches handed to the sender, so a batch of an unfinished cut is never sent.
   */
  private async writeBatches(reports: ForwardedReport[], segments: number[]): Promise<void> {
    const segment = Math.max(...segments);
    const groups: ForwardedReport[][] = [];
    let group: ForwardedReport[] = [];
    let rows = 0;
    let bytes = 0;
    for (const r of reports) {
      const size = Buffer.byteLength(JSON.stringify(r.report));
      if (
        group.length > 0 &&
        (group.length >= this.o.maxBatchReports || rows + r.report.stats.length > this.o.maxBatchRows || bytes + size > this.o.maxBatchBytes)
      ) {
        groups.push(group);
        group = [];
        rows = 0;
        bytes = 0;
      }
      group.push(r);
      rows += r.report.stats.length;
      bytes += size;
    }
    if (group.length > 0) groups.push(group);
    const first = this.nextSeq;
    this.nextSeq += groups.length;
    // The sequence is persisted before any batch with these numbers exists (and so before any is sent).
    await writeAtomically(this.o.dir, 'next-seq', String(this.nextSeq));
    const sizes: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const seq = first + i;
      const body: BatchFile = { seq, segment, reports: groups[i]! };
      const text = JSON.stringify(body);
      sizes.push(Buffer.byteLength(text));
      await writeAtomically(this.o.dir, `batch-${seq}.json`, text, false);
    }
    await syncDir(this.o.dir);
    await writeAtomically(this.o.dir, `cut-${segment}.json`, JSON.stringify(segments));
    for (let i = 0; i < groups.length; i++) {
      this.outbox.set(first + i, { reports: groups[i]!.length, bytes: sizes[i]! });
    }
    this.gauge();
  }

  /** Starts the sender if it is idle. */
  private kick(): void {
    if (this.sending || this.closed || this.retryTimer) return;
    this.sending = this.sendAll().finally(() => {
      this.sending = null;
    });
  }

  /** Sends the batches in order, one at a time; stops at the first failure and retries later with the same key. */
  private async sendAll(): Promise<void> {
    for (;;) {
      if (this.closed) return;
      const seq = [...this.outbox.keys()].sort((a, b) => a - b)[0];
      if (seq === undefined) return;
      const file = join(this.o.dir, `batch-${seq}.json`);
      const text = await readFile(file, 'utf8');
      const batch = JSON.parse(text) as BatchFile;
      const outcome = await this.post(seq, batch);
      if (outcome === 'retry') {
        this.m.failures.inc();
        const wait = this.backoff;
        this.backoff = Math.min(this.o.maxBackoffMs, this.backoff * 2);
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.kick();
        }, wait);
        this.retryTimer.unref();
        return;
      }
      this.backoff = this.o.minBackoffMs;
      if (outcome === 'acked') {
        this.m.forwardedReports.inc(batch.reports.length);
        this.m.forwardedBatches.inc();
        this.m.lastSuccess.set(Date.now() / 1000);
      } else {
        this.m.dropped.inc({ reason: 'refused-upstream' }, batch.reports.length);
      }
      await unlink(file);
      this.outbox.delete(seq);
      this.gauge();
    }
  }

  private async post(seq: number, batch: BatchFile): Promise<'acked' | 'refused' | 'retry'> {
    let res: Response;
    try {
      res = await fetch(new URL('/sdk/v1/metrics/batch', this.o.upstream), {
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.o.relayToken}`,
          'content-type': 'application/json',
          'idempotency-key': `${this.instanceId}:${seq}`,
        },
        body: JSON.stringify({ reports: batch.reports }),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      this.o.onEvent?.({ kind: 'retry', seq, detail: err instanceof Error ? err.message : String(err) });
      return 'retry';
    }
    const detail = await res.text().catch(() => '');
    if (res.ok) return 'acked';
    // Unauthorized (a relay token being rotated), quotas, unavailability: the same batch again later.
    if (res.status === 401 || res.status === 408 || res.status === 429 || res.status >= 500) {
      const after = Number(res.headers.get('retry-after'));
      if (Number.isFinite(after) && after > 0) this.backoff = Math.max(this.backoff, Math.min(this.o.maxBackoffMs, after * 1000));
      this.o.onEvent?.({ kind: 'retry', seq, status: res.status, detail });
      return 'retry';
    }
    // Any other 4xx can never pass (the batch itself is refused): drop it, counted.
    this.o.onEvent?.({ kind: 'refused', seq, status: res.status, detail });
    return 'refused';
  }

  /** Cuts and sends now; resolves once nothing is pending, or rejects after `timeoutMs`. For shutdown and tests. */
  async flush(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await this.chain;
    await this.cut();
    while (this.pending > 0) {
      if (Date.now() > deadline) throw new Error(`${this.pending} reports still pending upstream`);
      if (this.retryTimer) {
        clearTimeout(this.retryTimer);
        this.retryTimer = null;
      }
      this.kick();
      await this.sending;
      if (this.pending > 0) await new Promise((r) => setTimeout(r, 100));
      await this.cut();
    }
  }

  /** Stops the timer and sender; what is journalled stays on disk and is sent by the next start. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.chain;
    await this.sending;
    await this.fh?.close();
    this.fh = null;
  }

  private gauge(): void {
    this.m.pending.set(this.pending);
  }
}

/** Writes `name` in `dir` via a temporary file, fsync and rename (and the directory's fsync unless told not to). */
async function writeAtomically(dir: string, name: string, text: string, sync = true): Promise<void> {
  const tmp = join(dir, `.${name}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    await fh.write(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, name));
  if (sync) await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Bytes of the files in `dir` (for tests and the docs' disk bound). */
export async function journalBytes(dir: string): Promise<number> {
  let n = 0;
  for (const name of await readdir(dir)) n += (await stat(join(dir, name))).size;
  return n;
}

function instruments(registry?: Registry) {
  const registers = registry ? [registry] : [];
  return {
    forwardedReports: new Counter({
      name: 'aviary_relay_metrics_forwarded_reports_total',
      help: 'SDK metrics reports forwarded upstream and acknowledged.',
      registers,
    }),
    forwardedBatches: new Counter({
      name: 'aviary_relay_metrics_forwarded_batches_total',
      help: 'Metrics batches acknowledged upstream.',
      registers,
    }),
    pending: new Gauge({
      name: 'aviary_relay_metrics_pending_reports',
      help: 'Reports journalled at this relay and not yet acknowledged upstream.',
      registers,
    }),
    dropped: new Counter({
      name: 'aviary_relay_metrics_dropped_reports_total',
      help: 'Reports not forwarded: full (journal at its bound; refused with 503, the SDK retries), refused-upstream (a batch upstream refused for good).',
      labelNames: ['reason'] as const,
      registers,
    }),
    failures: new Counter({
      name: 'aviary_relay_metrics_upstream_failures_total',
      help: 'Batch attempts that failed and will be retried with the same key.',
      registers,
    }),
    lastSuccess: new Gauge({
      name: 'aviary_relay_metrics_last_success_timestamp_seconds',
      help: 'When upstream last acknowledged a metrics batch (Unix seconds).',
      registers,
    }),
  };
}
