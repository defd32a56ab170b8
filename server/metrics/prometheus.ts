/**
 * Prometheus instruments for metrics ingestion and the canary guard, registered on the app's registry
 * (`app.prometheus.registry`, server/ops/prometheus.ts), so `GET /metrics` shows them and several apps in one
 * process (tests, benchmarks) keep separate counts.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Creates the instruments on `registry`. */
export function createIngestInstruments(registry: Registry) {
  const registers = [registry];
  return {
    reports: new Counter({
      name: 'aviary_metrics_reports_total',
      help: 'SDK metrics reports by result: counted, duplicate (already counted), invalid (or nothing countable), refused (queue full or a key quota), failed (commit error).',
      labelNames: ['result'] as const,
      registers,
    }),
    rows: new Counter({ name: 'aviary_metrics_rows_total', help: 'Per-minute metrics rows upserted by ingestion batches.', registers }),
    droppedRows: new Counter({
      name: 'aviary_metrics_dropped_rows_total',
      help: 'Report rows not counted, by the limit they broke: unknown-flag, unknown-variant, clock-skew, too-old, count-limit.',
      labelNames: ['reason'] as const,
      registers,
    }),
    canaryEvidenceCapped: new Counter({
      name: 'aviary_canary_evidence_capped_outcomes_total',
      help: 'Outcomes from client-side SDK keys left out of canary evidence by the per-instance and per-key-minute caps.',
      registers,
    }),
    queued: new Gauge({ name: 'aviary_metrics_queued_reports', help: 'SDK metrics reports waiting for their batch to commit.', registers }),
    batchSeconds: new Histogram({
      name: 'aviary_metrics_batch_seconds',
      help: 'Time to commit one ingestion batch (the longest an admin write waits behind metrics).',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1],
      registers,
    }),
    retentionDeleted: new Counter({
      name: 'aviary_metrics_retention_deleted_rows_total',
      help: 'Per-minute metrics rows deleted by the retention policy.',
      registers,
    }),
    canaryDecisions: new Counter({
      name: 'aviary_canary_transitions_total',
      help: 'Canary transitions by action (canary.advance, canary.rollback, ...) and by whom (guard or operator).',
      labelNames: ['action', 'by'] as const,
      registers,
    }),
  };
}

/** The instruments of one app. */
export type IngestInstruments = ReturnType<typeof createIngestInstruments>;

/** Instruments on a private registry, for an ingester used outside an app (unit tests, benchmarks). */
export function detachedInstruments(): IngestInstruments {
  return createIngestInstruments(new Registry());
}
