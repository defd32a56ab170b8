import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MetricsReport } from '@aviary/sdk/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IngestKeyBusy, IngestUnavailable, MetricsIngester, type ReportSource, type TouchedFlag } from '../../server/metrics/metrics-ingester.js';
import { MetricsStore } from '../../server/metrics/metrics-store.js';
import { openSqlite, type SqlitePort } from '../../server/storage/sqlite-port.js';

const MINUTE = Date.UTC(2026, 0, 1, 0, 0, 0);
const KEY: ReportSource = { tokenId: 'key-a', clientSide: false };
let dir: string;
let store: SqlitePort;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'aviary-ingester-'));
  store = openSqlite(join(dir, 'aviary.db'));
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function report(seq: number, rows: number, flag = 'f'): MetricsReport {
  return {
    sdkId: 'sdk',
    seq,
    stats: Array.from({ length: rows }, (_, i) => ({
      flag,
      variant: i % 2 ? 'on' : 'off',
      minute: MINUTE + Math.floor(i / 2) * 60_000,
      evaluations: 1,
      outcomes: 1,
      errors: 0,
    })),
  };
}

describe('metrics ingester', () => {
  it('keeps each transaction under maxBatchRows and still counts everything once', async () => {
    const batches: TouchedFlag[][] = [];
    const ingester = new MetricsIngester(store, { now: () => MINUTE, maxBatchRows: 100, maxDelayMs: 1, onCommitted: (t) => batches.push(t) });
    const receipts = await Promise.all(Array.from({ length: 10 }, (_, i) => ingester.submit('production', report(i + 1, 40), KEY)));
    expect(receipts.every((r) => r.accepted && !r.duplicate)).toBe(true);
    // 10 reports × 40 rows at ≤ 100 rows per transaction: at least 4 transactions.
    expect(batches.length).toBeGreaterThanOrEqual(4);
    const [on, off] = await new MetricsStore(store).variantTotals('production', 'f', ['on', 'off'], MINUTE);
    expect(on.evaluations + off.evaluations).toBe(400);
    await ingester.close();
  });

  it('refuses reports beyond its queue bound instead of growing without limit', async () => {
    const ingester = new MetricsIngester(store, { now: () => MINUTE, maxQueuedReports: 2, maxQueuedShare: 1, maxDelayMs: 50 });
    const first = ingester.submit('production', report(1, 1), KEY);
    const second = ingester.submit('production', report(2, 1), KEY);
    await expect(ingester.submit('production', report(3, 1), KEY)).rejects.toBeInstanceOf(IngestUnavailable);
    await expect(Promise.all([first, second])).resolves.toHaveLength(2);
    ingester.close();
    await expect(ingester.submit('production', report(4, 1), KEY)).rejects.toBeInstanceOf(IngestUnavailable);
  });

  it("one key holds only its share of the queue; another key's reports are still taken", async () => {
    const ingester = new MetricsIngester(store, { now: () => MINUTE, maxQueuedReports: 8, maxQueuedShare: 0.25, maxDelayMs: 50 });
    const flood = [ingester.submit('production', report(1, 1), KEY), ingester.submit('production', report(2, 1), KEY)];
    const refused = ingester.submit('production', report(3, 1), KEY);
    await expect(refused).rejects.toBeInstanceOf(IngestKeyBusy);
    await expect(refused).rejects.toMatchObject({ limit: 'queued-reports-per-key', allowance: 2 });
    const other = ingester.submit('production', report(1, 1), { tokenId: 'key-b', clientSide: true });
    await expect(Promise.all([...flood, other])).resolves.toEqual([
      { accepted: true, duplicate: false },
      { accepted: true, duplicate: false },
      // The same (sdkId, seq) as the first report, but another key's: not a duplicate of it.
      { accepted: true, duplicate: false },
    ]);
    // Once its reports are stored, the key may queue again.
    await expect(ingester.submit('production', report(3, 1), KEY)).resolves.toEqual({ accepted: true, duplicate: false });
    await ingester.close();
  });

  it('counts a report sent twice within one batch once', async () => {
    const ingester = new MetricsIngester(store, { now: () => MINUTE, maxDelayMs: 50 });
    const receipts = await Promise.all([ingester.submit('production', report(1, 2), KEY), ingester.submit('production', report(1, 2), KEY)]);
    expect(receipts).toEqual([
      { accepted: true, duplicate: false },
      { accepted: true, duplicate: true },
    ]);
    const [on, off] = await new MetricsStore(store).variantTotals('production', 'f', ['on', 'off'], MINUTE);
    expect(on.evaluations + off.evaluations).toBe(2);
    await ingester.close();
  });

  it('merges reasons and latency into the stored minute, and keeps them when a later report has none', async () => {
    const ingester = new MetricsIngester(store, { now: () => MINUTE, maxDelayMs: 1 });
    const row = { flag: 'f', variant: 'on', minute: MINUTE, evaluations: 2, outcomes: 2, errors: 0 };
    await ingester.submit('production', { sdkId: 'a', seq: 1, stats: [{ ...row, reasons: { FALLTHROUGH: 2 }, latency: { '10': 2 } }] }, KEY);
    await ingester.submit(
      'production',
      { sdkId: 'a', seq: 2, stats: [{ ...row, reasons: { FALLTHROUGH: 1, RULE_MATCH: 1 }, latency: { '10': 1, '20': 1 } }] },
      KEY,
    );
    await ingester.submit('production', { sdkId: 'a', seq: 3, stats: [row] }, KEY);
    await ingester.submit('production', { sdkId: 'a', seq: 4, stats: [{ ...row, latency: { '20': 2 } }] }, KEY);
    const totals = (await new MetricsStore(store).query('production', 'f', MINUTE, MINUTE + 60_000, 60_000)).totals.on!;
    expect(totals).toMatchObject({ evaluations: 8, outcomes: 8, reasons: { FALLTHROUGH: 3, RULE_MATCH: 1 }, latencySamples: 6 });
    expect(await new MetricsStore(store).variantHistogram('production', 'f', 'on', MINUTE, MINUTE + 60_000)).toEqual({ '10': 3, '20': 3 });
    await ingester.close();
  });

  it('commits what is queued when it closes', async () => {
    const ingester = new MetricsIngester(store, { now: () => MINUTE, maxDelayMs: 10_000 });
    const pending = ingester.submit('production', report(1, 2), KEY);
    ingester.close();
    await expect(pending).resolves.toEqual({ accepted: true, duplicate: false });
  });
});
