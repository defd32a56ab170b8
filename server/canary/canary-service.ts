/**
 * The canary runtime: starts canaries, applies manual operations, and runs the guard — right after every metrics
 * batch that touched a flag with an active canary, and on a timer (hold expiry, hand edits). Every transition is
 * one write transaction that stores the run, changes the flag state through the flag store (validated, audited,
 * versioned, streamed) and records the evidence in the audit entry.
 *
 * The clock is injected (`now`): stage clocks are stored timestamps, so a restart resumes where it stopped.
 */
import type Database from 'better-sqlite3';
import type { FlagState, SparseHistogram } from '@aviary/sdk/core';
import { problem } from '../errors.js';
import type { MetricsStore } from '../metrics/metrics-store.js';
import type { IngestInstruments } from '../metrics/prometheus.js';
import type { StoredFlagState } from '../storage/schema.js';
import { readFlagConfig } from '../storage/snapshot.js';
import type { Actor, WriteContext, Writer } from '../storage/writer.js';
import { CanaryStore } from './canary-store.js';
import { percentAt, validateCanaryDocument, type CanaryDocument, type CanaryInput } from './document.js';
import { decide } from './evidence.js';
import { clientCaps, type EvidenceStore } from './evidence-store.js';
import { isDrifted, operatorExposure, renderFlagState, type ExposureIssue } from './flag-render.js';
import {
  CanaryConflict,
  heldMs,
  holdExpiresAt,
  isActive,
  onDrift,
  onExposure,
  onGuard,
  onManual,
  startRun,
  type CanaryRun,
  type ManualAction,
  type Transition,
} from './state-machine.js';
import { testAlpha, type Comparison } from './stats.js';

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
  /** Where ingest records the guard's evidence (server/canary/evidence-store.ts). */
  evidence: EvidenceStore;
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
  /**
   * What serves the canary variant besides the canary's own rollout (CONTRACT §4 says a rollback sends "all its
   * traffic" to control; this is what it cannot): the operator's rules, targets or offVariant serving it now, and the
   * share of evaluations that got it since the stage began (active) or since the canary finished, from SDK reports.
   */
  exposure: CanaryExposure;
}

/** See {@link CanaryStatus.exposure}. */
export interface CanaryExposure {
  outsideCanary: ExposureIssue[];
  /** Whole minutes after `since` up to now (at most the last hour); null until SDKs reported any. */
  measured: { since: string; evaluations: number; canaryEvaluations: number; share: number } | null;
}

const iso = (ms: number) => new Date(ms).toISOString();
const MINUTE = 60_000;

function storedOf(s: FlagState): StoredFlagState {
  return { enabled: s.enabled, offVariant: s.offVariant, targets: s.targets, rules: s.rules, fallthrough: s.fallthrough };
}

export class CanaryService {
  readonly store: CanaryStore;
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly dirty = new Set<string>();
  private dirtyScheduled: ReturnType<typeof setImmediate> | null = null;
  private readonly segmentExists;
  private readonly tokenName;

  constructor(private readonly o: CanaryServiceOptions) {
    this.store = new CanaryStore(o.sqlite);
    const seg = o.sqlite.prepare<[string], { one: number }>('SELECT 1 AS one FROM segments WHERE key = ?');
    this.segmentExists = (key: string) => seg.get(key) !== undefined;
    this.tokenName = o.sqlite.prepare<[string], { name: string; client_side: number }>('SELECT name, client_side FROM tokens WHERE id = ?');
    for (const { environment, flag, run } of this.store.active()) this.track(environment, flag, run);
    o.evidence.collectStale();
  }

  /** Keeps the evidence store recording for the run's current window (or stops it once the run is over). */
  private track(environment: string, flag: string, run: CanaryRun): void {
    const doc = run.document;
    this.o.evidence.setTarget(
      environment,
      flag,
      isActive(run.state) ? { windowStartedAt: run.windowStartedAt, canary: doc.canary, control: doc.control, ...clientCaps(doc.guard) } : null,
    );
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
    // Evidence of windows that closed, a chunk per tick.
    this.safely(() => this.o.evidence.pruneChunk());
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      (this.o.log ?? console).error({ err }, 'canary guard failed');
    }
  }

  /**
   * The tail test's threshold source: the control's latency in the hour before the window (minutes strictly before
   * its first minute), taken when the window opens and kept with the run, so that no report arriving later (minutes
   * can be labelled in the past) can move it once the window's data exists.
   */
  private referenceFor(environment: string, flag: string, run: CanaryRun): SparseHistogram {
    const windowMinute = Math.floor(run.windowStartedAt / MINUTE) * MINUTE;
    return this.o.metrics.variantHistogram(environment, flag, run.document.control, windowMinute - REFERENCE_MS, windowMinute);
  }

  private comparisonOf(environment: string, flag: string, run: CanaryRun): Comparison {
    const doc = run.document;
    // The evidence recorded for this window (a few rows, whatever the window's length), split by key kind.
    const evidence = this.o.evidence.read(environment, flag, run.windowStartedAt, doc);
    return decide(evidence, doc, doc.guard, testAlpha(doc.guard, doc.stages.length), run.reference ?? this.referenceFor(environment, flag, run));
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
    const exposed = operatorExposure(config.state, run.document.canary);
    if (run.state === 'running' && exposed.length > 0) {
      return this.apply(
        environment,
        flag,
        run,
        onExposure(
          run,
          now,
          exposed.map((e) => `${e.path}: ${e.message}`),
        ),
        GUARD_ACTOR,
        null,
      );
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
    // A new comparison window freezes its tail-test reference now, before any of its data exists.
    if (t.action === 'canary.start' || t.run.windowStartedAt !== before.windowStartedAt)
      t.run = { ...t.run, reference: this.referenceFor(environment, flag, t.run) };
    // A rollback cannot take away what the operator's own rules serve: say so where people look.
    if (t.run.state === 'rolled_back' && t.flagChanged) {
      const config = readFlagConfig(this.o.sqlite, environment, flag);
      const exposed = config ? operatorExposure(config.state, t.run.document.canary) : [];
      if (exposed.length > 0)
        t = {
          ...t,
          why: `${t.why}; note: "${t.run.document.canary}" is still served outside the canary (${exposed.map((e) => `${e.path}: ${e.message}`).join('; ')})`,
        };
    }
    this.o.writer.write(actor, (w) => {
      this.store.save(environment, flag, t.run);
      const canary = {
        state: t.run.state,
        stage: t.run.stage,
        percent: percentAt(t.run.document, t.run.stage),
        ...(evidence
          ? {
              evidence: {
                decision: evidence.decision,
                why: evidence.why,
                canary: evidence.canary,
                control: evidence.control,
                errorRate: evidence.errorRate,
                latency: evidence.latency,
                method: evidence.method,
                ...(evidence.sources ? { sources: this.namedSources(evidence.sources) } : {}),
              },
            }
          : {}),
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
    this.track(environment, flag, t.run);
    this.o.instruments?.canaryDecisions.inc({ action: t.action ?? 'canary.update', by: actor === GUARD_ACTOR ? 'guard' : 'operator' });
    return t.run;
  }

  /** The evidence sources with each SDK key's name and kind, for the audit entry. */
  private namedSources(sources: NonNullable<Comparison['sources']>) {
    const named = (ids: string[]) =>
      ids.map((id) => {
        const t = this.tokenName.get(id);
        return { id, name: t?.name ?? null, clientSide: t ? t.client_side === 1 : null };
      });
    return {
      ...sources,
      server: { ...sources.server, keys: named(sources.server.keys) },
      client: { ...sources.client, keys: named(sources.client.keys) },
    };
  }

  /** Validates and starts a canary (PUT). Answers whether it was created (201) or replaced a finished one (200). */
  put(environment: string, flag: string, body: CanaryInput, actor: Actor): { run: CanaryRun; created: boolean } {
    const config = this.requireFlag(environment, flag);
    const checked = validateCanaryDocument(body, config, this.segmentExists);
    if (!checked.value) throw problem('validation', `${checked.issues[0]?.path || '/'}: ${checked.issues[0]?.message}`, { errors: checked.issues });
    const existing = this.store.get(environment, flag);
    if (existing && isActive(existing.state)) {
      throw problem(
        'conflict',
        `A canary of "${flag}" is ${existing.state} in "${environment}"; roll it back, promote it or DELETE it before starting another.`,
      );
    }
    this.refuseExposure(config.state, checked.value.canary, 'start');
    const now = this.o.now();
    const run = startRun(checked.value, now);
    const stage = checked.value.stages[0]!;
    this.apply(
      environment,
      flag,
      run,
      {
        run,
        action: 'canary.start',
        why: `canary "${run.document.canary}" against "${run.document.control}" started at ${'segment' in stage ? `cohort "${stage.segment}"` : `${stage.percent}%`}`,
        flagChanged: true,
      },
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
    if (action === 'resume') {
      const config = readFlagConfig(this.o.sqlite, environment, flag);
      if (config) this.refuseExposure(config.state, run.document.canary, 'resume');
    }
    let t: Transition;
    try {
      t = onManual(run, action, this.o.now(), reason);
    } catch (err) {
      if (err instanceof CanaryConflict) throw problem('conflict', err.message);
      throw err;
    }
    return this.apply(
      environment,
      flag,
      run,
      t,
      actor,
      action === 'rollback' || action === 'promote' || action === 'advance' ? this.comparisonOf(environment, flag, run) : null,
    );
  }

  /**
   * A canary compares a random sample: refuse to start (or resume) one while the operator's own state serves its
   * variant to chosen contexts (docs/canary-analysis.md, "The operator's own rules").
   */
  private refuseExposure(state: FlagState, canary: string, what: 'start' | 'resume'): void {
    const exposed = operatorExposure(state, canary);
    if (exposed.length === 0) return;
    throw problem(
      'conflict',
      `Cannot ${what} the canary: the flag state already serves "${canary}" outside the canary's rollout (${exposed.map((e) => `${e.path}: ${e.message}`).join('; ')}). ` +
        'That traffic is not a random sample (it would bias the comparison) and a rollback could not take it away. Remove it, or make it a cohort stage ({ "segment": ... }).',
      { errors: exposed.map(({ path, message }) => ({ path: `/state${path}`, message })) },
    );
  }

  /** Removes a canary (DELETE). The flag keeps its current state; the removal is audited. */
  remove(environment: string, flag: string, actor: Actor): void {
    this.requireFlag(environment, flag);
    const run = this.store.get(environment, flag);
    if (!run) throw problem('not-found', `No canary of "${flag}" in "${environment}".`);
    this.o.evidence.setTarget(environment, flag, null);
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
      exposure: this.exposureOf(environment, flag, run, now),
    };
  }

  private exposureOf(environment: string, flag: string, run: CanaryRun, now: number): CanaryExposure {
    const config = readFlagConfig(this.o.sqlite, environment, flag);
    const outsideCanary = config ? operatorExposure(config.state, run.document.canary) : [];
    // Whole minutes only: the minute of the decision mixes traffic from before it.
    const from = Math.max(
      Math.floor((isActive(run.state) ? run.stageStartedAt : run.updatedAt) / MINUTE) * MINUTE + MINUTE,
      Math.floor(now / MINUTE) * MINUTE - 60 * MINUTE,
    );
    const byVariant = this.o.metrics.evaluationsByVariant(environment, flag, from, now);
    let evaluations = 0;
    for (const n of byVariant.values()) evaluations += n;
    const canaryEvaluations = byVariant.get(run.document.canary) ?? 0;
    return {
      outsideCanary,
      measured: evaluations > 0 ? { since: iso(from), evaluations, canaryEvaluations, share: canaryEvaluations / evaluations } : null,
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
