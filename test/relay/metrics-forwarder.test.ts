/**
 * The relay side of metrics exactly once (server/relay/metrics-forwarder.ts) against a real upstream server: a
 * forwarder SIGKILLed mid-stream and restarted, an upstream restarted while batches pend, a batch whose answer was
 * lost, the bounds while upstream is down, and batches upstream refuses for good.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MetricsReport } from '@aviary/sdk/protocol';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ForwarderFull, MetricsForwarder } from '../../server/relay/metrics-forwarder.js';
import { api, request, startServer, type TestServer } from '../helpers/server.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { createRelayTokenRow } from './relay-token.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PROD = 'configured-sdk-production';
let srv: TestServer;
let dir: string;
let relay: { id: string; token: string };
const cleanups: Array<() => Promise<unknown>> = [];

beforeEach(async () => {
  srv = await startServer();
  expect((await api(srv).post('/api/v1/flags', { key: 'checkout', kind: 'boolean' })).status).toBe(201);
  relay = await createRelayTokenRow(srv.app, ['production']);
  dir = mkdtempSync(join(tmpdir(), 'aviary-forwarder-'));
});
afterEach(async () => {
  await srv.close();
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

const minute = () => Math.floor(Date.now() / 60_000) * 60_000;
const report = (sdkId: string, seq: number): MetricsReport => ({
  sdkId,
  seq,
  sdk: { name: 'test', version: '0' },
  stats: [{ flag: 'checkout', variant: 'on', minute: minute(), evaluations: 1, outcomes: 0, errors: 0 }],
});

/** Upstream's view of one SDK: the seqs recorded for it and the evaluations counted (1 per report). */
async function upstreamView(s: TestServer, sdkId: string) {
  const seqs = (
    await s.app.store.all<{ seq: number }>('SELECT seq FROM sdk_reports WHERE token_id = ? AND sdk_id = ? ORDER BY seq', [PROD, sdkId])
  ).map((r) => Number(r.seq));
  const m = await api(s).get('/api/v1/flags/checkout/environments/production/metrics');
  return { seqs, evaluations: (m.body.totals.on?.evaluations as number | undefined) ?? 0 };
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function spawnForwarder(upstream: string, start: number, count: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=aviary-source', 'test/relay/forwarder-process.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      FWD_DIR: dir,
      FWD_UPSTREAM: upstream,
      FWD_TOKEN: relay.token,
      FWD_KEY: PROD,
      FWD_ENV: 'production',
      FWD_SDK_ID: 'sdk-1',
      FWD_START: String(start),
      FWD_COUNT: String(count),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const acked = new Set<number>();
  let out = '';
  let err = '';
  let flushed = false;
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    const lines = out.split('\n');
    out = lines.pop()!;
    for (const l of lines) {
      if (l === 'flushed') flushed = true;
      else if (l.startsWith('ack ')) acked.add(Number(l.slice(4)));
    }
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  // 'close', not 'exit': every line the process printed has been read by then.
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  cleanups.push(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  return { child, acked, exited, isFlushed: () => flushed, stderr: () => err };
}

describe('MetricsForwarder', () => {
  it('SIGKILLed mid-stream and restarted: every acknowledged report is counted upstream exactly once', async () => {
    const first = spawnForwarder(srv.url, 0, 100_000);
    // Let it journal and forward for a while (several periods, batches in flight), then kill it without warning.
    await waitFor('acks from the first process', () => first.acked.size >= 600, 30_000);
    first.child.kill('SIGKILL');
    await first.exited;
    const acked = [...first.acked];
    const lastAcked = Math.max(...acked);
    // Killed with reports journalled and not yet acknowledged upstream: the restart has something to recover.
    const journalled = readdirSync(dir)
      .filter((n) => n.startsWith('journal-') || n.startsWith('batch-'))
      .reduce((n, f) => n + readFileSync(join(dir, f)).length, 0);
    expect(journalled).toBeGreaterThan(0);
    // The SDK retries what was not acknowledged (from lastAcked + 1 on); some of it may already be journalled.
    const second = spawnForwarder(srv.url, lastAcked + 1, 300);
    await waitFor('the second process to flush', () => second.isFlushed(), 30_000);
    await second.exited;
    const { seqs, evaluations } = await upstreamView(srv, 'sdk-1');
    // Exactly once: one sdk_reports row and one evaluation per report, for every acknowledged seq and nothing else.
    const expected = Array.from({ length: lastAcked + 1 + 300 }, (_, i) => i);
    expect(seqs).toEqual(expected);
    expect(evaluations).toBe(expected.length);
    for (const s of acked) expect(seqs).toContain(s);
    expect(readdirSync(dir).filter((n) => n.startsWith('batch-'))).toEqual([]);
  }, 90_000);

  it('upstream restarted while batches pend: they are sent again with the same key and counted once', async () => {
    const backends = [{ host: '127.0.0.1', port: Number(new URL(srv.url).port) }];
    const proxy: TcpProxy = await startTcpProxy(backends);
    cleanups.push(() => proxy.close());
    const registry = new Registry();
    const fwd = await MetricsForwarder.open({
      dir,
      upstream: proxy.url,
      relayToken: relay.token,
      periodMs: 100,
      minBackoffMs: 50,
      maxBackoffMs: 200,
      registry,
    });
    cleanups.push(() => fwd.close());
    await Promise.all(Array.from({ length: 50 }, (_, i) => fwd.accept({ tokenId: PROD, environment: 'production' }, report('sdk-2', i))));
    await fwd.flush();
    expect((await upstreamView(srv, 'sdk-2')).evaluations).toBe(50);
    // Upstream goes away; reports keep being accepted (durable at the relay) and batches fail.
    await srv.close({ keepData: true });
    await Promise.all(Array.from({ length: 100 }, (_, i) => fwd.accept({ tokenId: PROD, environment: 'production' }, report('sdk-2', 50 + i))));
    const failures = async () => (await registry.getSingleMetric('aviary_relay_metrics_upstream_failures_total')!.get()).values[0]?.value ?? 0;
    await waitFor('failed attempts while upstream is down', async () => (await failures()) >= 2);
    expect(fwd.pending).toBe(100);
    expect((await registry.getSingleMetric('aviary_relay_metrics_pending_reports')!.get()).values[0]!.value).toBe(100);
    // Upstream returns (same database, new port behind the same address).
    srv = await startServer({ dbPath: srv.dbPath });
    cleanups.push(() => Promise.resolve(rmSync(join(srv.dbPath, '..'), { recursive: true, force: true })));
    backends[0] = { host: '127.0.0.1', port: Number(new URL(srv.url).port) };
    await fwd.flush(15_000);
    const view = await upstreamView(srv, 'sdk-2');
    expect(view.seqs).toEqual(Array.from({ length: 150 }, (_, i) => i));
    expect(view.evaluations).toBe(150);
    expect((await registry.getSingleMetric('aviary_relay_metrics_forwarded_reports_total')!.get()).values[0]!.value).toBe(150);
    expect((await registry.getSingleMetric('aviary_relay_metrics_last_success_timestamp_seconds')!.get()).values[0]!.value).toBeGreaterThan(0);
  }, 60_000);

  it('a batch committed upstream whose answer was lost is re-sent after a restart with the same key and counted once', async () => {
    const fwd = await MetricsForwarder.open({ dir, upstream: srv.url, relayToken: relay.token, periodMs: 3_600_000 });
    await Promise.all(Array.from({ length: 10 }, (_, i) => fwd.accept({ tokenId: PROD, environment: 'production' }, report('sdk-3', i))));
    await fwd.cut();
    const instanceId = fwd.instanceId;
    await fwd.close();
    // What the relay would have sent: upstream commits it, and the answer never reaches the relay.
    const batchFile = readdirSync(dir).find((n) => n.startsWith('batch-'))!;
    const batch = JSON.parse(readFileSync(join(dir, batchFile), 'utf8')) as { seq: number; reports: unknown[] };
    const sent = await request(srv, 'POST', '/sdk/v1/metrics/batch', {
      token: relay.token,
      headers: { 'idempotency-key': `${instanceId}:${batch.seq}` },
      body: { reports: batch.reports },
    });
    expect(sent.body).toMatchObject({ replay: false, counted: 10 });
    // The relay restarts: same instance id (persisted), the batch is re-sent with the same key, a replay.
    const registry = new Registry();
    const again = await MetricsForwarder.open({ dir, upstream: srv.url, relayToken: relay.token, periodMs: 3_600_000, registry });
    cleanups.push(() => again.close());
    expect(again.instanceId).toBe(instanceId);
    await again.flush();
    expect((await upstreamView(srv, 'sdk-3')).evaluations).toBe(10);
    expect(await srv.app.store.all('SELECT batch_key FROM relay_batches')).toEqual([{ batch_key: `${instanceId}:${batch.seq}` }]);
    expect((await registry.getSingleMetric('aviary_relay_metrics_forwarded_batches_total')!.get()).values[0]!.value).toBe(1);
    // New batches take new numbers (the sequence was persisted before sending).
    await again.accept({ tokenId: PROD, environment: 'production' }, report('sdk-3', 10));
    await again.flush();
    const keys = (await srv.app.store.all<{ batch_key: string }>('SELECT batch_key FROM relay_batches ORDER BY received_at')).map((r) => r.batch_key);
    expect(keys).toEqual([`${instanceId}:${batch.seq}`, `${instanceId}:${batch.seq + 1}`]);
    expect((await upstreamView(srv, 'sdk-3')).evaluations).toBe(11);
  });

  it('a cut interrupted by a crash (some batch files written, no marker) is redone: nothing lost, nothing twice', async () => {
    const fwd = await MetricsForwarder.open({ dir, upstream: srv.url, relayToken: relay.token, periodMs: 3_600_000, maxBatchReports: 2 });
    await Promise.all(Array.from({ length: 5 }, (_, i) => fwd.accept({ tokenId: PROD, environment: 'production' }, report('sdk-6', i))));
    const instanceId = fwd.instanceId;
    await fwd.close();
    // What a crash in the middle of cutting journal-0 leaves: its first batch file written, the next seq persisted,
    // no marker, the segment still there.
    expect(readdirSync(dir).filter((n) => n.startsWith('journal-'))).toEqual(['journal-0.ndjson']);
    const lines = readFileSync(join(dir, 'journal-0.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    writeFileSync(join(dir, 'batch-0.json'), JSON.stringify({ seq: 0, segment: 0, reports: lines.slice(0, 2) }));
    writeFileSync(join(dir, 'next-seq'), '3');
    const again = await MetricsForwarder.open({ dir, upstream: srv.url, relayToken: relay.token, periodMs: 3_600_000, maxBatchReports: 2 });
    cleanups.push(() => again.close());
    expect(again.pending).toBe(5);
    await again.flush();
    const view = await upstreamView(srv, 'sdk-6');
    expect(view.seqs).toEqual([0, 1, 2, 3, 4]);
    expect(view.evaluations).toBe(5);
    const keys = (await srv.app.store.all<{ batch_key: string }>('SELECT batch_key FROM relay_batches ORDER BY batch_key')).map((r) => r.batch_key);
    expect(keys).toEqual([`${instanceId}:3`, `${instanceId}:4`, `${instanceId}:5`]);
    expect(
      readdirSync(dir)
        .filter((n) => !n.startsWith('journal-'))
        .sort(),
    ).toEqual(['instance-id', 'next-seq']);
  });

  it('holds at most its bound while upstream is down (refusals counted as drops); batches refused for good are dropped and counted', async () => {
    const registry = new Registry();
    // Nothing listens on port 9 of 127.0.0.1 (discard): every attempt fails.
    const fwd = await MetricsForwarder.open({
      dir,
      upstream: 'http://127.0.0.1:9',
      relayToken: relay.token,
      periodMs: 50,
      maxPendingReports: 20,
      registry,
    });
    cleanups.push(() => fwd.close());
    await Promise.all(Array.from({ length: 20 }, (_, i) => fwd.accept({ tokenId: PROD, environment: 'production' }, report('sdk-4', i))));
    await expect(fwd.accept({ tokenId: PROD, environment: 'production' }, report('sdk-4', 20))).rejects.toBeInstanceOf(ForwarderFull);
    const dropped = await registry.getSingleMetric('aviary_relay_metrics_dropped_reports_total')!.get();
    expect(dropped.values).toEqual([expect.objectContaining({ labels: { reason: 'full' }, value: 1 })]);
    expect(fwd.pending).toBe(20);
    await fwd.close();

    // A key that is not of the environment it is attributed to: upstream refuses the batch (403) for good.
    const registry2 = new Registry();
    const dir2 = mkdtempSync(join(tmpdir(), 'aviary-forwarder-'));
    cleanups.push(() => Promise.resolve(rmSync(dir2, { recursive: true, force: true })));
    const events: number[] = [];
    const fwd2 = await MetricsForwarder.open({
      dir: dir2,
      upstream: srv.url,
      relayToken: relay.token,
      periodMs: 3_600_000,
      registry: registry2,
      onEvent: (e) => events.push(e.status ?? 0),
    });
    cleanups.push(() => fwd2.close());
    await fwd2.accept({ tokenId: 'configured-sdk-staging', environment: 'production' }, report('sdk-5', 0));
    await fwd2.flush();
    expect(events).toEqual([403]);
    const dropped2 = await registry2.getSingleMetric('aviary_relay_metrics_dropped_reports_total')!.get();
    expect(dropped2.values).toEqual([expect.objectContaining({ labels: { reason: 'refused-upstream' }, value: 1 })]);
    expect(readdirSync(dir2).filter((n) => n.startsWith('batch-'))).toEqual([]);
    expect((await upstreamView(srv, 'sdk-5')).evaluations).toBe(0);
  });
});
