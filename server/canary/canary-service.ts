/**
 * The canary runtime: starts canaries, applies manual operations, and runs the guard — right after every metrics
 * batch that touched a flag with an active canary, and on a timer (hold expiry, hand edits). Every transition is
 * one write transaction that stores the run, changes the flag state through the flag store (validated, audited,
 * versioned, streamed) and records the evidence in the audit entry.
 *
 * The clock is injected (`now`): stage clocks are stored timestamps, so a restart resumes where it stopped.
 */
import type Database from 'better-sqlite3';
import type { FlagState } from '@aviary/sdk/core';
import { problem } from '../errors.js';
import type { MetricsStore } from '../metrics/metrics-store.js';
import type { IngestInstruments } from '../metrics/prometheus.js';
import type { StoredFlagState } from '../storage/schema.js';
import { readFlagConfig } from '../storage/snapshot.js';
import type { Actor, WriteContext, Writer } from '../storage/writer.js';
import { CanaryStore } from './canary-store.js';
import { percentAt, validateCanaryDocument, type CanaryDocument } from './document.js';
import { isDrifted, renderFlagState } from './flag-render.js';
import {
  CanaryConflict,
  heldMs,
  holdExpiresAt,
  isActive,
  onDrift,
  onGuard,
  onManual,
  startRun,
  type CanaryRun,
  type ManualAction,
  type Transition,
} from './state-machine.js';
import { compare, testAlpha, type Comparison } from './stats.js';

/** How far back before a window the tail test's reference p95 is taken from. */
const REFERENCE_MS = 3_600_000;

/** The system actor of automatic decisions. */
export const GUARD_ACTOR: Actor = { tokenId: null, name: 'canary-guard' };

/** What the service needs from the flag store (server/storage/flag-store.ts `mutateState`). */
export interface FlagStateMutator {
  mutateState(
    w: WriteContext,
    environment: string,
    key: string,
    mutate: (current: FlagState, now: number) => { state: StoredFlagState } | null,
    reason: string | null,
    options?: { action?: string },
  ): unknown;
}

/** Options of {@link CanaryService}. */
export interface CanaryServiceOptions {
  sqlite: Database.Database;
  writer: Writer;
  flags: FlagStateMutator;
  metrics: MetricsStore;
  now: () => number;
  instruments?: IngestInstruments;
  /** How often the timer checks holds and hand edits (ms). Default 1,000. */
  tickMs?: number;
  log?: { error: (obj: unknown, msg: string) => void };
}

/** `GET .../canary`: the document, where the canary stands and the live comparison. */
export interface CanaryStatus extends CanaryDocument {
  state: CanaryRun['state'];
  stage: number;
  /** The canary's share of traffic outside cohorts now. */
  percent: number;
  /** Cohorts that get the canary now. */
  cohorts: string[];
  startedAt: string;
  updatedAt: string;
  stageStartedAt: string;
  pausedAt: string | null;
  /** Seconds left before the guard may advance (0 when the hold has passed); null when not active. */
  holdRemainingSeconds: number | null;
  /** Time held in the current stage, paused time excluded. */
  heldSeconds: number;
  /** Start of the guard's comparison window. */
  windowStartedAt: string;
  /** The live comparison over the window (null once the canary is no longer active). */
  comparison: (Comparison & { at: string }) | null;
  lastDecision: { at: string; decision: string; why: string } | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

function storedOf(s: FlagState): StoredFlagState {
  return { enabled: s.enabled, offVariant: s.offVariant, targets: s.targets, rules: s.rules, fallthrough: s.fallthrough };
}

export class CanaryService {
  readonly store: CanaryStore;
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly dirty = new Set<string>();
  private dirtyScheduled: ReturnType<typeof setImmediate> | null = null;
  private readonly segmentExists;

  constructor(private readonly o: CanaryServiceOptions) {
    this.store = new CanaryStore(o.sqlite);
    const seg = o.sqlite.prepare<[string], { one: number }>('SELECT 1 AS one FROM segments WHERE key = ?');
    this.segmentExists = (key: string) => seg.get(key) !== undefined;
  }

  /** Starts the timer (hold expiry, hand edits, and canaries that resumed after a restart). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.o.tickMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.dirtyScheduled) clearImmediate(this.dirtyScheduled);
    this.timer = null;
    this.dirtyScheduled = null;
  }

  /** Called after each metrics batch: guard the flags that got outcomes, once per event-loop turn. */
  outcomesArrived(touched: Array<{ environment: string; flag: string }>): void {
    for (const t of touched) this.dirty.add(`${t.environment}\u0000${t.flag}`);
    if (!this.dirtyScheduled && this.dirty.size > 0) {
      this.dirtyScheduled = setImmediate(() => {
        this.dirtyScheduled = null;
        const keys = [...this.dirty];
        this.dirty.clear();
        for (const k of keys) {
          const [environment, flag] = k.split('\u0000') as [string, string];
          this.safely(() => this.guard(environment, flag));
        }
      });
    }
  }

  /** Runs the guard for every active canary (the timer's job; tests call it with an injected clock). */
  tick(): void {
    for (const { environment, flag } of this.store.active()) this.safely(() => this.guard(environment, flag));
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      (this.o.log ?? console).error({ err }, 'canary guard failed');
    }
  }

  private comparisonOf(environment: string, flag: string, run: CanaryRun): Comparison {
    const doc = run.document;
    const [canary, control] = this.o.metrics.variantTotals(environment, flag, [doc.canary, doc.control], run.windowStartedAt);
    // The tail test's threshold comes from the control's latency in the hour before the window: data the window's
    // verdicts cannot influence (minutes strictly before the window's first minute).
    const windowMinute = Math.floor(run.windowStartedAt / 60_000) * 60_000;
    const reference = this.o.metrics.variantHistogram(environment, flag, doc.control, windowMinute - REFERENCE_MS, windowMinute);
    return compare(
      { variant: doc.canary, totals: canary },
      { variant: doc.control, totals: control },
      doc.guard,
      testAlpha(doc.guard, doc.stages.length),
      reference,
    );
  }

  /**
   * One guard run: pause on a hand edit, else compare and apply the verdict (rollback on regression, advance when
   * healthy and held long enough). Returns the run after it.
   */
  guard(environment: string, flag: string): CanaryRun | null {
    const run = this.store.get(environment, flag);
    if (!run || !isActive(run.state)) return run;
    const now = this.o.now();
    const config = readFlagConfig(this.o.sqlite, environment, flag);
    if (!config) return run;
    if (run.state === 'running' && isDrifted(config.state, run, flag)) {
      return this.apply(environment, flag, run, onDrift(run, now), GUARD_ACTOR, null);
    }
    const comparison = this.comparisonOf(environment, flag, run);
    const t = onGuard(run, comparison, now);
    if (t.action) return this.apply(environment, flag, run, t, GUARD_ACTOR, comparison);
    // Only a change of verdict is stored (not every batch's numbers): GET computes the live comparison anyway.
    if (run.lastDecision?.decision !== comparison.decision) {
      this.o.writer.write(GUARD_ACTOR, () => this.store.save(environment, flag, t.run));
    }
    return t.run;
  }

  /** Stores a transition, re-renders the flag state when it changed, and audits it with its evidence. */
  private apply(environment: string, flag: string, before: CanaryRun, t: Transition, actor: Actor, evidence: Comparison | null): CanaryRun {
    this.o.writer.write(actor, (w) => {
      this.store.save(environment, flag, t.run);
      const canary = {
        state: t.run.state,
        stage: t.run.stage,
        percent: percentAt(t.run.document, t.run.stage),
        ...(evidence ? { evidence: { decision: evidence.decision, why: evidence.why, canary: evidence.canary, control: evidence.control, errorRate: evidence.errorRate, latency: evidence.latency, method: evidence.method } } : {}),
      };
      if (t.flagChanged) {
        this.o.flags.mutateState(
          w,
          environment,
          flag,
          (current) => {
            const next = storedOf(renderFlagState(current, t.run, flag));
            return JSON.stringify(next) === JSON.stringify(storedOf(current)) ? null : { state: next };
          },
          t.why,
          { action: t.action ?? 'canary.update' },
        );
      }
      // The canary's own entry: what it did and why, with the numbers, even when the flag state did not change.
      w.audit({
        action: t.action ?? 'canary.update',
        resourceType: 'canary',
        resourceKey: flag,
        environment,
        before: { state: before.state, stage: before.stage, percent: percentAt(before.document, before.stage) },
        after: canary,
        reason: t.why,
      });
    });
    this.o.instruments?.canaryDecisions.inc({ action: t.action ?? 'canary.update', by: actor === GUARD_ACTOR ? 'guard' : 'operator' });
    return t.run;
  }

  /** Validates and starts a canary (PUT). Answers whether it was created (201) or replaced a finished one (200). */
  put(environment: string, flag: string, body: unknown, actor: Actor): { run: CanaryRun; created: boolean } {
    const config = this.requireFlag(environment, flag);
    const checked = validateCanaryDocument(body, config, this.segmentExists);
    if (!checked.value) throw problem('validation', `${checked.issues[0]?.path || '/'}: ${checked.issues[0]?.message}`, { errors: checked.issues });
    const existing = this.store.get(environment, flag);
    if (existing && isActive(existing.state)) {
      throw problem('conflict', `A canary of "${flag}" is ${existing.state} in "${environment}"; roll it back, promote it or DELETE it before starting another.`);
    }
    const now = this.o.now();
    const run = startRun(checked.value, now);
    const stage = checked.value.stages[0]!;
    this.apply(
      environment,
      flag,
      run,
      { run, action: 'canary.start', why: `canary "${run.document.canary}" against "${run.document.control}" started at ${'segment' in stage ? `cohort "${stage.segment}"` : `${stage.percent}%`}`, flagChanged: true },
      actor,
      null,
    );
    return { run, created: !existing };
  }

  /** A manual operation (POST .../canary/{action}). */
  manual(environment: string, flag: string, action: ManualAction, actor: Actor, reason?: string): CanaryRun {
    this.requireFlag(environment, flag);
    const run = this.store.get(environment, flag);
    if (!run) throw problem('not-found', `No canary of "${flag}" in "${environment}".`);
    let t: Transition;
    try {
      t = onManual(run, action, this.o.now(), reason);
    } catch (err) {
      if (err instanceof CanaryConflict) throw problem('conflict', err.message);
      throw err;
    }
    return this.apply(environment, flag, run, t, actor, action === 'rollback' || action === 'promote' || action === 'advance' ? this.comparisonOf(environment, flag, run) : null);
  }

  /** Removes a canary (DELETE). The flag keeps its current state; the removal is audited. */
  remove(environment: string, flag: string, actor: Actor): void {
    this.requireFlag(environment, flag);
    const run = this.store.get(environment, flag);
    if (!run) throw problem('not-found', `No canary of "${flag}" in "${environment}".`);
    this.o.writer.write(actor, (w) => {
      this.store.delete(environment, flag);
      w.audit({
        action: 'canary.delete',
        resourceType: 'canary',
        resourceKey: flag,
        environment,
        before: { state: run.state, stage: run.stage, document: run.document },
        after: null,
        reason: 'canary removed; the flag keeps its current state',
      });
    });
  }

  /** `GET .../canary`. */
  status(environment: string, flag: string): CanaryStatus {
    this.requireFlag(environment, flag);
    const run = this.store.get(environment, flag);
    if (!run) throw problem('not-found', `No canary of "${flag}" in "${environment}".`);
    return this.statusOf(environment, flag, run);
  }

  /** The status document of a run (live comparison while it is active). */
  statusOf(environment: string, flag: string, run: CanaryRun): CanaryStatus {
    const now = this.o.now();
    const active = isActive(run.state);
    const cohorts = run.document.stages.slice(0, run.stage + 1).flatMap((s) => ('segment' in s ? [s.segment] : []));
    return {
      ...run.document,
      state: run.state,
      stage: run.stage,
      percent: run.state === 'rolled_back' ? 0 : run.state === 'promoted' || run.state === 'completed' ? 100 : percentAt(run.document, run.stage),
      cohorts: active ? cohorts : [],
      startedAt: iso(run.startedAt),
      updatedAt: iso(run.updatedAt),
      stageStartedAt: iso(run.stageStartedAt),
      pausedAt: run.pausedAt === null ? null : iso(run.pausedAt),
      holdRemainingSeconds: active ? Math.max(0, Math.ceil((holdExpiresAt(run) - (run.pausedAt ?? now)) / 1000)) : null,
      windowStartedAt: iso(run.windowStartedAt),
      comparison: active ? { at: iso(now), ...this.comparisonOf(environment, flag, run) } : null,
      lastDecision: run.lastDecision ? { at: iso(run.lastDecision.at), decision: run.lastDecision.decision, why: run.lastDecision.why } : null,
      heldSeconds: Math.floor(heldMs(run, now) / 1000),
    };
  }

  private requireFlag(environment: string, flag: string) {
    const env = this.o.sqlite.prepare<[string], { key: string }>('SELECT key FROM environments WHERE key = ?').get(environment);
    if (!env) throw problem('not-found', `No environment "${environment}".`);
    const config = readFlagConfig(this.o.sqlite, environment, flag);
    if (!config) throw problem('not-found', `No flag "${flag}" in "${environment}".`);
    return config;
  }
}
