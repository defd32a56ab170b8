import { afterEach, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient, type ClientOptions, type EnvironmentSnapshot, type VariantStats } from '@aviary/sdk';
import { latencyBucket } from '@aviary/sdk/core';
import { reportSink, type ReportSink } from './reports.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const snapshot: EnvironmentSnapshot = {
  environment: 'production',
  version: 4,
  flags: [
    {
      key: 'checkout',
      kind: 'boolean',
      variants: [
        { key: 'on', value: true },
        { key: 'off', value: false },
      ],
      state: {
        enabled: true,
        offVariant: 'off',
        targets: [{ variant: 'off', keys: ['vip'] }],
        rules: [],
        fallthrough: { variant: 'on' },
        version: 2,
      },
    },
  ],
  segments: [],
};

async function setup(extra: Partial<ClientOptions> = {}): Promise<{ sink: ReportSink; c: AviaryClient }> {
  const sink = await reportSink();
  cleanups.push(() => sink.close());
  // The sink speaks no websocket: the stream keeps failing (slowly), metrics go through.
  const c = createClient({
    baseUrl: sink.url,
    sdkKey: 'sdk-key',
    bootstrap: snapshot,
    flushIntervalMs: 0,
    backoff: { initialMs: 60_000 },
    app: { name: 'shop', version: '9' },
    ...extra,
  });
  cleanups.push(() => c.close());
  return { sink, c };
}

const byVariant = (rows: VariantStats[]): Record<string, VariantStats> => Object.fromEntries(rows.map((r) => [`${r.flag}/${r.variant}`, r]));

describe('evaluation counts and outcomes', () => {
  it('counts evaluations per flag, variant and reason, and attributes outcomes to the served variant', async () => {
    const { sink, c } = await setup();
    for (let i = 0; i < 3; i++) c.variation('checkout', { key: `user-${i}` }, false);
    c.variation('checkout', { key: 'vip' }, false);
    c.variation('checkout', { key: 'vip' }, false);
    c.variation('nope', { key: 'u' }, false);
    c.track('checkout', { key: 'vip' }, { error: true, latencyMs: 12 });
    c.track('checkout', { key: 'user-1' }, { latencyMs: 3, value: 9.5 });
    expect(c.measure('checkout', { key: 'user-2' }, false, (on) => (on ? 'new' : 'old'))).toBe('new');
    expect(() =>
      c.measure('checkout', { key: 'vip' }, false, () => {
        throw new Error('old path failed');
      }),
    ).toThrow('old path failed');
    await expect(c.measure('checkout', { key: 'user-0' }, false, async () => Promise.reject(new Error('async failure')))).rejects.toThrow(
      'async failure',
    );

    expect(await c.flush()).toBe(true);
    expect(sink.received).toHaveLength(1);
    const { report, authorization } = sink.received[0]!;
    expect(authorization).toBe('Bearer sdk-key');
    expect(report).toMatchObject({ sdkId: c.sdkId, seq: 1, app: { name: 'shop', version: '9' }, sdk: { name: '@aviary/sdk' } });
    const rows = byVariant(report.stats);
    expect(Object.keys(rows).sort()).toEqual(['checkout/off', 'checkout/on', 'nope/null']);
    // measure() evaluates (and counts) once per call; track() does not count an evaluation.
    expect(rows['checkout/on']).toMatchObject({ evaluations: 5, reasons: { FALLTHROUGH: 5 }, outcomes: 3, errors: 1, valueSum: 9.5, valueCount: 1 });
    expect(rows['checkout/off']).toMatchObject({ evaluations: 3, reasons: { TARGET_MATCH: 3 }, outcomes: 2, errors: 2 });
    expect(rows['nope/null']).toMatchObject({ evaluations: 1, reasons: { ERROR: 1 }, outcomes: 0 });
    expect(rows['checkout/off']!.latency![latencyBucket(12)]).toBe(1);
    const onLatencies = Object.values(rows['checkout/on']!.latency!).reduce((a, b) => a + b, 0);
    expect(onLatencies).toBe(3);
    for (const r of report.stats) expect(r.minute % 60_000).toBe(0);

    // Nothing new: nothing sent.
    expect(await c.flush()).toBe(true);
    expect(sink.received).toHaveLength(1);
  });

  it('counts evaluations made before the first snapshot as the default served', async () => {
    const sink = await reportSink();
    cleanups.push(() => sink.close());
    const c = createClient({ baseUrl: sink.url, sdkKey: 'k', flushIntervalMs: 0, backoff: { initialMs: 60_000 } });
    cleanups.push(() => c.close());
    c.variation('early', { key: 'u' }, true);
    await c.flush();
    expect(sink.received[0]!.report.stats).toEqual([
      expect.objectContaining({ flag: 'early', variant: null, evaluations: 1, reasons: { ERROR: 1 } }),
    ]);
  });

  it('retries a failed report with the same seq, so the server can count it exactly once', async () => {
    const { sink, c } = await setup();
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    c.variation('checkout', { key: 'a' }, false);
    sink.script = [503];
    expect(await c.flush()).toBe(false);
    expect(errors).toHaveLength(1);
    expect(c.status().reports).toMatchObject({ pending: 1, failedAttempts: 1, sent: 0 });
    c.variation('checkout', { key: 'b' }, false);
    expect(await c.flush()).toBe(true);
    expect(sink.received.map((r) => [r.report.seq, r.status])).toEqual([
      [1, 503],
      [1, 200],
      [2, 200],
    ]);
    expect(sink.received[1]!.report).toEqual(sink.received[0]!.report);
    expect(c.status().reports).toMatchObject({ pending: 0, sent: 2, droppedReports: 0 });
  });

  it('keeps reports while the server is unreachable, then delivers them in order', async () => {
    const { sink, c } = await setup();
    sink.script = [502, 502, 502];
    for (let i = 0; i < 3; i++) {
      c.variation('checkout', { key: `u${i}` }, false);
      expect(await c.flush()).toBe(false);
    }
    expect(await c.flush()).toBe(true);
    const delivered = sink.received.filter((r) => r.status === 200).map((r) => r.report.seq);
    expect(delivered).toEqual([1, 2, 3]);
  });

  it('bounds the reports it keeps and counts what it had to drop', async () => {
    const { sink, c } = await setup({ maxPendingReports: 3 });
    sink.script = Array(20).fill(503);
    for (let i = 0; i < 6; i++) {
      c.variation('checkout', { key: `u${i}` }, false);
      await c.flush();
    }
    expect(c.status().reports).toMatchObject({ pending: 3, droppedReports: 3 });
    sink.script = [];
    expect(await c.flush()).toBe(true);
    expect(sink.received.filter((r) => r.status === 200).map((r) => r.report.seq)).toEqual([4, 5, 6]);
  });

  it('drops a report the server rejects as invalid instead of blocking later ones behind it', async () => {
    const { sink, c } = await setup();
    c.variation('checkout', { key: 'a' }, false);
    sink.script = [400];
    expect(await c.flush()).toBe(true);
    c.variation('checkout', { key: 'a' }, false);
    await c.flush();
    expect(sink.received.map((r) => [r.report.seq, r.status])).toEqual([
      [1, 400],
      [2, 200],
    ]);
    expect(c.status().reports.droppedReports).toBe(1);
  });

  it('close() sends what is pending; the background flush sends on its own', async () => {
    const { sink, c } = await setup({ flushIntervalMs: 50 });
    c.variation('checkout', { key: 'a' }, false);
    const t0 = Date.now();
    while (sink.received.length === 0 && Date.now() - t0 < 3_000) await new Promise((r) => setTimeout(r, 10));
    expect(sink.received).toHaveLength(1);
    c.track('checkout', { key: 'a' }, { latencyMs: 5 });
    await c.close();
    expect(sink.received.at(-1)!.report.stats[0]).toMatchObject({ flag: 'checkout', variant: 'on', evaluations: 0, outcomes: 1 });
  });
});
