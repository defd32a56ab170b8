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
 *
 * Which windows are open is read from the `canaries` table inside each batch's transaction, so every replica records
 * the evidence of every canary, whichever replica started it or moved it to a new window. Windows that are no longer
 * a running or paused canary's are deleted a chunk at a time by the guard's owner (`pruneChunk`).
 */
import { mergeHistogram, type SparseHistogram } from '@aviary/sdk/core';
import type { EvidenceRecorder, FreshReport } from '../metrics/metrics-ingester.js';
import type { IngestInstruments } from '../metrics/prometheus.js';
import { chunked, flat, keysWhere, valuesList } from '../metrics/sql-lists.js';
import type { Sql, SqlValue, StorePort, Tx } from '../storage/port.js';
import type { CanaryDocument } from './document.js';
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
  environment: string;
  flag: string;
  window_started_at: number | string;
  variant: string;
  pool: 'server' | 'client';
  evaluations: number | string;
  outcomes: number | string;
  errors: number | string;
  latency: string | null;
  instances: number | string;
  keys: string;
  max_unit_outcomes: number | string;
  max_unit_errors: number | string;
  max_unit_latency: number | string;
  capped_outcomes: number | string;
}

/** One unit's running totals over a window (a row of `canary_evidence_units`). */
interface UnitTotals {
  outcomes: number;
  errors: number;
  latencySamples: number;
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

const SQL = {
  // What `canary-store.ts` stores: the window starts at `last_decision.windowStartedAt`, else at the stage's start.
  targets: "SELECT environment, flag, document, stage_started_at, last_decision FROM canaries WHERE state IN ('running', 'paused')",
  agg: 'SELECT * FROM canary_evidence WHERE environment = ? AND flag = ? AND window_started_at = ?',
  windows: 'SELECT DISTINCT environment, flag, window_started_at FROM canary_evidence',
  deleteUnits: `DELETE FROM canary_evidence_units WHERE (environment, flag, window_started_at, variant, unit) IN
    (SELECT environment, flag, window_started_at, variant, unit FROM canary_evidence_units
      WHERE environment = ? AND flag = ? AND window_started_at = ? LIMIT ?)`,
  deleteAgg: 'DELETE FROM canary_evidence WHERE environment = ? AND flag = ? AND window_started_at = ?',
};

const UNIT_KEY = ['environment', 'flag', 'window_started_at', 'variant', 'unit'] as const;
const AGG_KEY = ['environment', 'flag', 'window_started_at', 'variant', 'pool'] as const;

function putUnits(n: number): string {
  return `INSERT INTO canary_evidence_units (environment, flag, window_started_at, variant, unit, outcomes, errors, latency_samples)
    VALUES ${valuesList(8, n)}
    ON CONFLICT (environment, flag, window_started_at, variant, unit) DO UPDATE SET
      outcomes = excluded.outcomes, errors = excluded.errors, latency_samples = excluded.latency_samples`;
}

function putAggs(n: number): string {
  return `INSERT INTO canary_evidence (environment, flag, window_started_at, variant, pool, evaluations, outcomes, errors, latency, instances, keys,
      max_unit_outcomes, max_unit_errors, max_unit_latency, capped_outcomes)
    VALUES ${valuesList(15, n)}
    ON CONFLICT (environment, flag, window_started_at, variant, pool) DO UPDATE SET
      evaluations = excluded.evaluations, outcomes = excluded.outcomes, errors = excluded.errors, latency = excluded.latency,
      instances = excluded.instances, keys = excluded.keys, max_unit_outcomes = excluded.max_unit_outcomes,
      max_unit_errors = excluded.max_unit_errors, max_unit_latency = excluded.max_unit_latency, capped_outcomes = excluded.capped_outcomes`;
}

interface TargetRow {
  environment: string;
  flag: string;
  document: string;
  stage_started_at: number | string;
  last_decision: string | null;
}

export class EvidenceStore implements EvidenceRecorder {
  /** Parsed targets by canary, reused while its stored row is unchanged. */
  private readonly parsed = new Map<string, { document: string; decision: string | null; stageStartedAt: number; target: EvidenceTarget }>();
  /** Windows whose evidence is no longer needed, deleted a chunk at a time. */
  private stale: Array<[string, string, number]> = [];

  constructor(
    private readonly store: StorePort,
    private readonly instruments?: IngestInstruments,
  ) {}

  /** The windows evidence is recorded for now (running and paused canaries), by `environment\0flag`. */
  private async targets(sql: Sql): Promise<Map<string, EvidenceTarget>> {
    const out = new Map<string, EvidenceTarget>();
    const seen = new Set<string>();
    for (const row of await sql.all<TargetRow>(SQL.targets)) {
      const key = `${row.environment}\u0000${row.flag}`;
      seen.add(key);
      const stageStartedAt = Number(row.stage_started_at);
      let p = this.parsed.get(key);
      if (!p || p.document !== row.document || p.decision !== row.last_decision || p.stageStartedAt !== stageStartedAt) {
        const doc = JSON.parse(row.document) as CanaryDocument;
        const decision = row.last_decision ? (JSON.parse(row.last_decision) as { windowStartedAt?: number }) : {};
        const target = {
          windowStartedAt: decision.windowStartedAt ?? stageStartedAt,
          canary: doc.canary,
          control: doc.control,
          ...clientCaps(doc.guard),
        };
        this.parsed.set(key, (p = { document: row.document, decision: row.last_decision, stageStartedAt, target }));
      }
      out.set(key, p.target);
    }
    for (const key of this.parsed.keys()) if (!seen.has(key)) this.parsed.delete(key);
    return out;
  }

  /**
   * Deletes up to `chunk` rows of windows no running or paused canary has (ended, deleted, or moved to a new window);
   * answers how many went (0: nothing left to do). The stale windows are listed in one read-only view of both tables,
   * so a window opened after the canaries were read cannot be taken for a stale one.
   */
  async pruneChunk(chunk = 2000): Promise<number> {
    if (this.stale.length === 0) {
      this.stale = await this.store.transaction(
        async (tx) => {
          const targets = await this.targets(tx);
          const windows = await tx.all<{ environment: string; flag: string; window_started_at: number | string }>(SQL.windows);
          return windows
            .map((w): [string, string, number] => [w.environment, w.flag, Number(w.window_started_at)])
            .filter(([environment, flag, window]) => targets.get(`${environment}\u0000${flag}`)?.windowStartedAt !== window);
        },
        { readOnly: true },
      );
    }
    while (this.stale.length > 0) {
      const [environment, flag, window] = this.stale[0]!;
      const deleted = await this.store.run(SQL.deleteUnits, [environment, flag, window, chunk]);
      if (deleted > 0) return deleted;
      await this.store.run(SQL.deleteAgg, [environment, flag, window]);
      this.stale.shift();
    }
    return 0;
  }

  /**
   * Records the evidence in a batch's fresh reports (inside the batch's transaction). The units it touches are read
   * in one statement per chunk, updated here in report order (so the caps see what earlier reports of the same batch
   * contributed), and written back once each.
   */
  async record(tx: Tx, reports: FreshReport[], now: number): Promise<void> {
    const targets = await this.targets(tx);
    if (targets.size === 0) return;
    const arrivalMinute = Math.floor(now / MINUTE) * MINUTE;
    const unitKey = (environment: string, flag: string, window: number, variant: string, unit: string) =>
      `${environment}\u0000${flag}\u0000${window}\u0000${variant}\u0000${unit}`;
    // The rows that count, and the units they need.
    const relevant: Array<{ r: FreshReport; s: FreshReport['stats'][number] & { variant: string }; target: EvidenceTarget }> = [];
    const needed = new Map<string, SqlValue[]>();
    for (const r of reports) {
      for (const s of r.stats) {
        const target = targets.get(`${r.environment}\u0000${s.flag}`);
        if (!target || s.variant === null || (s.variant !== target.canary && s.variant !== target.control)) continue;
        if (s.minute < Math.floor(target.windowStartedAt / MINUTE) * MINUTE) continue;
        relevant.push({ r, s: s as typeof s & { variant: string }, target });
        if (s.outcomes === 0) continue;
        const units = [`i:${r.source.tokenId}:${r.sdkId}`, ...(r.source.clientSide ? [`k:${r.source.tokenId}:${arrivalMinute}`] : [])];
        for (const unit of units)
          needed.set(unitKey(r.environment, s.flag, target.windowStartedAt, s.variant, unit), [
            r.environment,
            s.flag,
            target.windowStartedAt,
            s.variant,
            unit,
          ]);
      }
    }
    if (relevant.length === 0) return;
    const units = new Map<string, UnitTotals>();
    for (const chunk of chunked([...needed.values()])) {
      const rows = await tx.all<
        { environment: string; flag: string; window_started_at: number | string; variant: string; unit: string } & Record<
          'outcomes' | 'errors' | 'latency_samples',
          number | string
        >
      >(
        `SELECT environment, flag, window_started_at, variant, unit, outcomes, errors, latency_samples FROM canary_evidence_units WHERE ${keysWhere(UNIT_KEY, chunk.length)}`,
        flat(chunk),
      );
      for (const u of rows)
        units.set(unitKey(u.environment, u.flag, Number(u.window_started_at), u.variant, u.unit), {
          outcomes: Number(u.outcomes),
          errors: Number(u.errors),
          latencySamples: Number(u.latency_samples),
        });
    }
    const touchedUnits = new Set<string>();
    const accs = new Map<string, Acc>();
    for (const { r, s, target } of relevant) {
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
      const instanceKey = unitKey(r.environment, s.flag, target.windowStartedAt, s.variant, `i:${r.source.tokenId}:${r.sdkId}`);
      const burstKey = unitKey(r.environment, s.flag, target.windowStartedAt, s.variant, `k:${r.source.tokenId}:${arrivalMinute}`);
      const inst = units.get(instanceKey);
      const key = pool === 'client' ? units.get(burstKey) : undefined;
      let allowed = s.outcomes;
      if (pool === 'client') {
        allowed = Math.min(allowed, Math.max(0, target.perInstance - (inst?.outcomes ?? 0)), Math.max(0, target.perKeyMinute - (key?.outcomes ?? 0)));
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
            [instanceKey, inst],
            [burstKey, key],
          ] as const)
        : ([[instanceKey, inst]] as const)) {
        const total: UnitTotals = {
          outcomes: (before?.outcomes ?? 0) + allowed,
          errors: (before?.errors ?? 0) + errors,
          latencySamples: (before?.latencySamples ?? 0) + samples,
        };
        units.set(unit, total);
        touchedUnits.add(unit);
        a.maxOutcomes = Math.max(a.maxOutcomes, total.outcomes);
        a.maxErrors = Math.max(a.maxErrors, total.errors);
        a.maxLatency = Math.max(a.maxLatency, total.latencySamples);
      }
    }
    const unitRows = [...touchedUnits].map((k) => {
      const t = units.get(k)!;
      return [...needed.get(k)!, t.outcomes, t.errors, t.latencySamples];
    });
    for (const chunk of chunked(unitRows)) await tx.run(putUnits(chunk.length), flat(chunk));

    const stored = new Map<string, AggRow>();
    const aggKeys = [...accs.values()].map((a) => [a.environment, a.flag, a.windowStartedAt, a.variant, a.pool]);
    for (const chunk of chunked(aggKeys)) {
      for (const row of await tx.all<AggRow>(`SELECT * FROM canary_evidence WHERE ${keysWhere(AGG_KEY, chunk.length)}`, flat(chunk)))
        stored.set(`${row.environment}\u0000${row.flag}\u0000${row.variant}\u0000${row.pool}\u0000${Number(row.window_started_at)}`, row);
    }
    let capped = 0;
    const aggRows: SqlValue[][] = [];
    for (const a of accs.values()) {
      const old = stored.get(`${a.environment}\u0000${a.flag}\u0000${a.variant}\u0000${a.pool}\u0000${a.windowStartedAt}`);
      let latency = a.latency;
      if (old?.latency)
        latency = latency ? mergeHistogram(JSON.parse(old.latency) as SparseHistogram, latency) : (JSON.parse(old.latency) as SparseHistogram);
      const keys = new Set<string>(old ? (JSON.parse(old.keys) as string[]) : []);
      for (const k of a.keys) if (keys.size < MAX_KEYS_LISTED) keys.add(k);
      aggRows.push([
        a.environment,
        a.flag,
        a.windowStartedAt,
        a.variant,
        a.pool,
        Number(old?.evaluations ?? 0) + a.evaluations,
        Number(old?.outcomes ?? 0) + a.outcomes,
        Number(old?.errors ?? 0) + a.errors,
        latency ? JSON.stringify(latency) : null,
        Number(old?.instances ?? 0) + a.instances,
        JSON.stringify([...keys]),
        Math.max(Number(old?.max_unit_outcomes ?? 0), a.maxOutcomes),
        Math.max(Number(old?.max_unit_errors ?? 0), a.maxErrors),
        Math.max(Number(old?.max_unit_latency ?? 0), a.maxLatency),
        Number(old?.capped_outcomes ?? 0) + a.capped,
      ]);
      if (a.pool === 'client') capped += a.capped;
    }
    for (const chunk of chunked(aggRows)) await tx.run(putAggs(chunk.length), flat(chunk));
    if (capped > 0) this.instruments?.canaryEvidenceCapped.inc(capped);
  }

  /** The evidence of one window (at most four rows read). */
  async read(
    environment: string,
    flag: string,
    windowStartedAt: number,
    variants: { canary: string; control: string },
    sql: Sql = this.store,
  ): Promise<Evidence> {
    const out = emptyEvidence();
    for (const row of await sql.all<AggRow>(SQL.agg, [environment, flag, windowStartedAt])) {
      const side = row.variant === variants.canary ? 'canary' : row.variant === variants.control ? 'control' : null;
      if (!side) continue;
      const e: SideEvidence = {
        evaluations: Number(row.evaluations),
        outcomes: Number(row.outcomes),
        errors: Number(row.errors),
        latency: row.latency ? (JSON.parse(row.latency) as SparseHistogram) : {},
        instances: Number(row.instances),
        keys: JSON.parse(row.keys) as string[],
        maxUnit: { outcomes: Number(row.max_unit_outcomes), errors: Number(row.max_unit_errors), latencySamples: Number(row.max_unit_latency) },
        capped: Number(row.capped_outcomes),
      };
      out[row.pool][side] = e;
    }
    return out;
  }
}
