/**
 * The guard's evidence, recorded at ingest (inside the metrics batch's transaction, so exactly once with the report)
 * for flags with an active canary, and read by the guard in O(1): a handful of rows per window, however long the
 * window and however much was ever stored.
 *
 * Only what arrives while a comparison window is open counts, and only rows whose minute is not before the window's
 * first minute: a report sent before a canary starts, or labelled with an earlier minute, is never its evidence.
 * Client-side (public) keys are capped: each SDK instance at `perInstance` outcomes per side over the window, each key
 * at `perKeyMinute` outcomes per side per minute of arrival; what goes over is left out (and counted). The largest
 * contribution of one unit (an instance, or a key-minute) is kept for the robust verdict (server/canary/evidence.ts).
 */
import type Database from 'better-sqlite3';
import { mergeHistogram, type SparseHistogram } from '@aviary/sdk/core';
import type { EvidenceRecorder, FreshReport } from '../metrics/metrics-ingester.js';
import type { IngestInstruments } from '../metrics/prometheus.js';
import { emptyEvidence, type Evidence, type SideEvidence } from './evidence.js';
import type { GuardConfig } from './stats.js';

const MINUTE = 60_000;
/** Token ids listed per side (the audit entry names who contributed; beyond this it says how many more). */
const MAX_KEYS_LISTED = 50;

/** Caps on one client-side contributor, from the guard (docs/canary-analysis.md, "Evidence from SDK keys"). */
export function clientCaps(guard: GuardConfig): { perInstance: number; perKeyMinute: number } {
  return { perInstance: Math.max(50, Math.ceil(guard.minSamples / 10)), perKeyMinute: Math.max(1_000, 10 * guard.minSamples) };
}

/** A canary window evidence is being recorded for. */
export interface EvidenceTarget {
  windowStartedAt: number;
  canary: string;
  control: string;
  perInstance: number;
  perKeyMinute: number;
}

interface AggRow {
  variant: string;
  pool: 'server' | 'client';
  evaluations: number;
  outcomes: number;
  errors: number;
  latency: string | null;
  instances: number;
  keys: string;
  max_unit_outcomes: number;
  max_unit_errors: number;
  max_unit_latency: number;
  capped_outcomes: number;
}

interface Acc {
  environment: string;
  flag: string;
  windowStartedAt: number;
  variant: string;
  pool: 'server' | 'client';
  evaluations: number;
  outcomes: number;
  errors: number;
  latency: SparseHistogram | null;
  instances: number;
  keys: Set<string>;
  maxOutcomes: number;
  maxErrors: number;
  maxLatency: number;
  capped: number;
}

function histogramCount(h: SparseHistogram | undefined): number {
  let n = 0;
  if (h) for (const k in h) n += h[k] ?? 0;
  return n;
}

/** `h` scaled by `f` (< 1), each bucket rounded down, so the result never holds more than its share. */
function scaled(h: SparseHistogram, f: number): SparseHistogram {
  const out: SparseHistogram = {};
  for (const k in h) {
    const c = Math.floor((h[k] ?? 0) * f);
    if (c > 0) out[k] = c;
  }
  return out;
}

export class EvidenceStore implements EvidenceRecorder {
  private readonly targets = new Map<string, EvidenceTarget>();
  /** Windows whose evidence is no longer needed, deleted a chunk at a time. */
  private readonly stale: Array<[string, string, number]> = [];
  private readonly stmts;

  constructor(
    sqlite: Database.Database,
    private readonly instruments?: IngestInstruments,
  ) {
    this.stmts = {
      unit: sqlite.prepare<[string, string, number, string, string], { outcomes: number; errors: number; latency_samples: number }>(
        'SELECT outcomes, errors, latency_samples FROM canary_evidence_units WHERE environment = ? AND flag = ? AND window_started_at = ? AND variant = ? AND unit = ?',
      ),
      putUnit: sqlite.prepare(
        `INSERT INTO canary_evidence_units (environment, flag, window_started_at, variant, unit, outcomes, errors, latency_samples)
         VALUES (@environment, @flag, @window, @variant, @unit, @outcomes, @errors, @latencySamples)
         ON CONFLICT (environment, flag, window_started_at, variant, unit) DO UPDATE SET
           outcomes = excluded.outcomes, errors = excluded.errors, latency_samples = excluded.latency_samples`,
      ),
      agg: sqlite.prepare<[string, string, number], AggRow>(
        'SELECT * FROM canary_evidence WHERE environment = ? AND flag = ? AND window_started_at = ?',
      ),
      aggOne: sqlite.prepare<[string, string, number, string, string], AggRow>(
        'SELECT * FROM canary_evidence WHERE environment = ? AND flag = ? AND window_started_at = ? AND variant = ? AND pool = ?',
      ),
      putAgg: sqlite.prepare(
        `INSERT INTO canary_evidence (environment, flag, window_started_at, variant, pool, evaluations, outcomes, errors, latency, instances, keys,
           max_unit_outcomes, max_unit_errors, max_unit_latency, capped_outcomes)
         VALUES (@environment, @flag, @window, @variant, @pool, @evaluations, @outcomes, @errors, @latency, @instances, @keys,
           @maxOutcomes, @maxErrors, @maxLatency, @capped)
         ON CONFLICT (environment, flag, window_started_at, variant, pool) DO UPDATE SET
           evaluations = excluded.evaluations, outcomes = excluded.outcomes, errors = excluded.errors, latency = excluded.latency,
           instances = excluded.instances, keys = excluded.keys, max_unit_outcomes = excluded.max_unit_outcomes,
           max_unit_errors = excluded.max_unit_errors, max_unit_latency = excluded.max_unit_latency, capped_outcomes = excluded.capped_outcomes`,
      ),
      windows: sqlite.prepare<[], { environment: string; flag: string; window_started_at: number }>(
        'SELECT DISTINCT environment, flag, window_started_at FROM canary_evidence',
      ),
      deleteUnits: sqlite.prepare<[string, string, number, number]>(
        `DELETE FROM canary_evidence_units WHERE rowid IN
           (SELECT rowid FROM canary_evidence_units WHERE environment = ? AND flag = ? AND window_started_at = ? LIMIT ?)`,
      ),
      deleteAgg: sqlite.prepare<[string, string, number]>('DELETE FROM canary_evidence WHERE environment = ? AND flag = ? AND window_started_at = ?'),
    };
  }

  /** Starts (or, with null, stops) recording evidence for a canary's window. */
  setTarget(environment: string, flag: string, target: EvidenceTarget | null): void {
    const key = `${environment}\u0000${flag}`;
    const before = this.targets.get(key);
    if (before && (!target || before.windowStartedAt !== target.windowStartedAt)) this.stale.push([environment, flag, before.windowStartedAt]);
    if (target) this.targets.set(key, target);
    else this.targets.delete(key);
  }

  /** Marks every stored window that is not a current target for deletion (boot: windows of canaries that ended). */
  collectStale(): void {
    for (const w of this.stmts.windows.all()) {
      const t = this.targets.get(`${w.environment}\u0000${w.flag}`);
      if (!t || t.windowStartedAt !== w.window_started_at) this.stale.push([w.environment, w.flag, w.window_started_at]);
    }
  }

  /** Deletes up to `chunk` rows of stale windows; answers how many went (0: nothing left to do). */
  pruneChunk(chunk = 2000): number {
    while (this.stale.length > 0) {
      const [environment, flag, window] = this.stale[0]!;
      const deleted = this.stmts.deleteUnits.run(environment, flag, window, chunk).changes;
      if (deleted > 0) return deleted;
      this.stmts.deleteAgg.run(environment, flag, window);
      this.stale.shift();
    }
    return 0;
  }

  /** Records the evidence in a batch's fresh reports (called inside the batch's transaction). */
  record(reports: FreshReport[], now: number): void {
    if (this.targets.size === 0) return;
    const arrivalMinute = Math.floor(now / MINUTE) * MINUTE;
    const accs = new Map<string, Acc>();
    for (const r of reports) {
      for (const s of r.stats) {
        const target = this.targets.get(`${r.environment}\u0000${s.flag}`);
        if (!target || (s.variant !== target.canary && s.variant !== target.control)) continue;
        if (s.minute < Math.floor(target.windowStartedAt / MINUTE) * MINUTE) continue;
        const pool = r.source.clientSide ? 'client' : 'server';
        const accKey = `${r.environment}\u0000${s.flag}\u0000${s.variant}\u0000${pool}`;
        let a = accs.get(accKey);
        if (!a) {
          a = {
            environment: r.environment,
            flag: s.flag,
            windowStartedAt: target.windowStartedAt,
            variant: s.variant,
            pool,
            evaluations: 0,
            outcomes: 0,
            errors: 0,
            latency: null,
            instances: 0,
            keys: new Set(),
            maxOutcomes: 0,
            maxErrors: 0,
            maxLatency: 0,
            capped: 0,
          };
          accs.set(accKey, a);
        }
        a.evaluations += s.evaluations;
        if (s.outcomes === 0) continue;
        const at = { environment: r.environment, flag: s.flag, window: target.windowStartedAt, variant: s.variant };
        const instance = `i:${r.source.tokenId}:${r.sdkId}`;
        const burst = `k:${r.source.tokenId}:${arrivalMinute}`;
        const inst = this.stmts.unit.get(r.environment, s.flag, target.windowStartedAt, s.variant, instance);
        const key = pool === 'client' ? this.stmts.unit.get(r.environment, s.flag, target.windowStartedAt, s.variant, burst) : undefined;
        let allowed = s.outcomes;
        if (pool === 'client') {
          allowed = Math.min(
            allowed,
            Math.max(0, target.perInstance - (inst?.outcomes ?? 0)),
            Math.max(0, target.perKeyMinute - (key?.outcomes ?? 0)),
          );
        }
        a.capped += s.outcomes - allowed;
        if (allowed === 0) continue;
        const f = allowed / s.outcomes;
        const errors = f === 1 ? s.errors : Math.round(s.errors * f);
        const latency = s.latency ? (f === 1 ? s.latency : scaled(s.latency, f)) : undefined;
        const samples = histogramCount(latency);
        a.outcomes += allowed;
        a.errors += errors;
        if (latency) mergeHistogram((a.latency ??= {}), latency);
        a.keys.add(r.source.tokenId);
        if (!inst) a.instances++;
        for (const [unit, before] of pool === 'client'
          ? ([
              [instance, inst],
              [burst, key],
            ] as const)
          : ([[instance, inst]] as const)) {
          const total = {
            outcomes: (before?.outcomes ?? 0) + allowed,
            errors: (before?.errors ?? 0) + errors,
            latencySamples: (before?.latency_samples ?? 0) + samples,
          };
          this.stmts.putUnit.run({ ...at, unit, ...total });
          a.maxOutcomes = Math.max(a.maxOutcomes, total.outcomes);
          a.maxErrors = Math.max(a.maxErrors, total.errors);
          a.maxLatency = Math.max(a.maxLatency, total.latencySamples);
        }
      }
    }
    let capped = 0;
    for (const a of accs.values()) {
      const stored = this.stmts.aggOne.get(a.environment, a.flag, a.windowStartedAt, a.variant, a.pool);
      let latency = a.latency;
      if (stored?.latency)
        latency = latency ? mergeHistogram(JSON.parse(stored.latency) as SparseHistogram, latency) : (JSON.parse(stored.latency) as SparseHistogram);
      const keys = new Set<string>(stored ? (JSON.parse(stored.keys) as string[]) : []);
      for (const k of a.keys) if (keys.size < MAX_KEYS_LISTED) keys.add(k);
      this.stmts.putAgg.run({
        environment: a.environment,
        flag: a.flag,
        window: a.windowStartedAt,
        variant: a.variant,
        pool: a.pool,
        evaluations: (stored?.evaluations ?? 0) + a.evaluations,
        outcomes: (stored?.outcomes ?? 0) + a.outcomes,
        errors: (stored?.errors ?? 0) + a.errors,
        latency: latency ? JSON.stringify(latency) : null,
        instances: (stored?.instances ?? 0) + a.instances,
        keys: JSON.stringify([...keys]),
        maxOutcomes: Math.max(stored?.max_unit_outcomes ?? 0, a.maxOutcomes),
        maxErrors: Math.max(stored?.max_unit_errors ?? 0, a.maxErrors),
        maxLatency: Math.max(stored?.max_unit_latency ?? 0, a.maxLatency),
        capped: (stored?.capped_outcomes ?? 0) + a.capped,
      });
      if (a.pool === 'client') capped += a.capped;
    }
    if (capped > 0) this.instruments?.canaryEvidenceCapped.inc(capped);
  }

  /** The evidence of one window (at most four rows read). */
  read(environment: string, flag: string, windowStartedAt: number, variants: { canary: string; control: string }): Evidence {
    const out = emptyEvidence();
    for (const row of this.stmts.agg.all(environment, flag, windowStartedAt)) {
      const side = row.variant === variants.canary ? 'canary' : row.variant === variants.control ? 'control' : null;
      if (!side) continue;
      const e: SideEvidence = {
        evaluations: row.evaluations,
        outcomes: row.outcomes,
        errors: row.errors,
        latency: row.latency ? (JSON.parse(row.latency) as SparseHistogram) : {},
        instances: row.instances,
        keys: JSON.parse(row.keys) as string[],
        maxUnit: { outcomes: row.max_unit_outcomes, errors: row.max_unit_errors, latencySamples: row.max_unit_latency },
        capped: row.capped_outcomes,
      };
      out[row.pool][side] = e;
    }
    return out;
  }
}
