/**
 * The canary runtime: starts canaries, applies manual operations, and runs the guard — right after every metrics
 * batch that touched a flag with an active canary, and on a timer (hold expiry, hand edits). Every transition is
 * one write transaction that stores the run, changes the flag state through the flag store (validated, audited,
 * versioned, streamed) and records the evidence in the audit entry.
 *
 * Replicas: the guard (its timer, and its run after an ingest batch) runs only on the replica that owns the
 * `canary-guard` duty (server/cluster/duties.ts), and every write it makes is fenced: the transaction first checks
 * that this replica still holds the duty, so a replica that lost it (paused, partitioned) changes nothing. Operator
 * actions (start, pause, resume, advance, roll back, promote, delete) run on whichever replica gets the request.
 * Every transition is decided inside its write transaction, on what that transaction reads (the run, the flag state,
 * the evidence), so a guard run and an operator action (or two guard runs) never act on each other's stale view.
 *
 * The clock is injected (`now`): stage clocks are stored timestamps, so a restart resumes where it stopped.
 */
import type { FlagState, SparseHistogram } from '@aviary/sdk/core';
import { LeaseLostError, type Duties } from '../cluster/duties.js';
import { problem } from '../errors.js';
import type { MetricsStore } from '../metrics/metrics-store.js';
import type { IngestInstruments } from '../metrics/prometheus.js';
import { bool, type Sql, type StorePort } from '../storage/port.js';
import type { StoredFlagState } from '../storage/schema.js';
import { readFlagConfig } from '../storage/snapshot.js';
import { storedOf } from '../storage/flag-state-store.js';
import type { Actor, WriteContext, Writer } from '../storage/writer.js';
import { CanaryStore } from './canary-store.js';
import { percentAt, validateCanaryDocument, type CanaryDocument, type CanaryInput } from './document.js';
import { decide } from './evidence.js';
import type { EvidenceStore } from './evidence-store.js';
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
export const GUARD_ACTOR: Actor = { tokenId: null, name: 'canary-guard', kind: 'canary-guard' };

/** What the service needs from the flag store (server/storage/flag-state-store.ts `mutateState`). */
export interface FlagStateMutator {
  mutateState(
    w: WriteContext,
    environment: string,
    key: string,
    mutate: (current: FlagState, now: number) => { state: StoredFlagState } | null,
    reason: string | null,
    options?: { action?: string },
  ): Promise<unknown>;
}

/** Options of {@link CanaryService}. */
export interface CanaryServiceOptions {
  store: StorePort;
  writer: Writer;
  flags: FlagStateMutator;
  metrics: MetricsStore;
  /** Where ingest records the guard's evidence (server/canary/evidence-store.ts). */
  evidence: EvidenceStore;
  /** Whether this replica runs the guard now, and the fence of its writes. */
  duties: Pick<Duties, 'owns' | 'fence'>;
  now: () => number;
  instruments?: IngestInstruments;
  /** How often the timer checks holds and hand edits (ms). Default 1,000. */
  tickMs?: number;
  log?: { error: (obj: unknown, msg: string) => void; warn: (obj: unknown, msg: string) => void };
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

/** What a guard run (or an operator action) decided: the run before, the transition, and the comparison behind it. */
interface Plan {
  before: CanaryRun;
  t: Transition;
  evidence: Comparison | null;
}

/** A guard run's finding: a plan to write, or nothing to write (`run`: the canary as it stands). */
type Finding = { plan: Plan; run?: undefined } | { plan: null; run: CanaryRun | null };

export class CanaryService {
  readonly store: CanaryStore;
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly dirty = new Set<string>();
  private dirtyScheduled: ReturnType<typeof setImmediate> | null = null;
  /** Guard work runs one piece at a time (timer ticks and post-ingest runs alike); `stop` waits for it. */
  private chain: Promise<unknown> = Promise.resolve();
  private ticking = false;
  private stopped = false;

  constructor(private readonly o: CanaryServiceOptions) {
    this.store = new CanaryStore(o.store);
  }

  /** Starts the timer (hold expiry, hand edits, and canaries that resumed after a restart or a takeover). */
  start(): void {
    if (this.timer) return;
    this.stopped = false;
    this.timer = setInterval(() => {
      if (this.ticking) return;
      this.ticking = true;
      void this.tick().finally(() => (this.ticking = false));
    }, this.o.tickMs ?? 1000);
    this.timer.unref();
  }

  /** Stops the timer and waits for the guard work under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.dirtyScheduled) clearImmediate(this.dirtyScheduled);
    this.timer = null;
    this.dirtyScheduled = null;
    this.dirty.clear();
    await this.chain;
  }

  /** Runs `fn` after the guard work queued before it (errors are logged, never thrown). */
  private serially(fn: () => Promise<unknown>): Promise<void> {
    const next = this.chain.then(() => this.safely(fn));
    this.chain = next;
    return next;
  }

  /** Called after each metrics batch: guard the flags that got outcomes, once per event-loop turn (guard's owner only). */
  outcomesArrived(touched: Array<{ environment: string; flag: string }>): void {
    if (this.stopped || !this.o.duties.owns('canary-guard')) return;
    for (const t of touched) this.dirty.add(`${t.environment}\u0000${t.flag}`);
    if (!this.dirtyScheduled && this.dirty.size > 0) {
      this.dirtyScheduled = setImmediate(() => {
        this.dirtyScheduled = null;
        const keys = [...this.dirty];
        this.dirty.clear();
        for (const k of keys) {
          const [environment, flag] = k.split('\u0000') as [string, string];
          void this.serially(() => this.guard(environment, flag));
        }
      });
    }
  }

  /**
   * Runs the guard for every active canary and prunes a chunk of evidence of closed windows (the timer's job; tests
   * call it with an injected clock). Only on the replica that owns the `canary-guard` duty; resolves when done.
   */
  tick(): Promise<void> {
    if (!this.o.duties.owns('canary-guard')) return Promise.resolve();
    return this.serially(async () => {
      for (const { environment, flag } of await this.store.active()) await this.safely(() => this.guard(environment, flag));
      // Evidence of windows that closed, a chunk per tick.
      await this.safely(() => this.o.evidence.pruneChunk());
    });
  }

  private async safely(fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      // Another replica took the duty over: it guards from now on; this one's decision was not written.
      if (err instanceof LeaseLostError) (this.o.log ?? console).warn({ err }, 'canary guard: the duty moved to another replica');
      else (this.o.log ?? console).error({ err }, 'canary guard failed');
    }
  }

  /**
   * The tail test's threshold source: the control's latency in the hour before the window (minutes strictly before
   * its first minute), taken when the window opens and kept with the run, so that no report arriving later (minutes
   * can be labelled in the past) can move it once the window's data exists.
   */
  private referenceFor(sql: Sql, environment: string, flag: string, run: CanaryRun): Promise<SparseHistogram> {
    const windowMinute = Math.floor(run.windowStartedAt / MINUTE) * MINUTE;
    return this.o.metrics.variantHistogram(environment, flag, run.document.control, windowMinute - REFERENCE_MS, windowMinute, sql);
  }

  private async comparisonOf(sql: Sql, environment: string, flag: string, run: CanaryRun): Promise<Comparison> {
    const doc = run.document;
    // The evidence recorded for this window (a few rows, whatever the window's length), split by key kind.
    const evidence = await this.o.evidence.read(environment, flag, run.windowStartedAt, doc, sql);
    return decide(
      evidence,
      doc,
      doc.guard,
      testAlpha(doc.guard, doc.stages.length),
      run.reference ?? (await this.referenceFor(sql, environment, flag, run)),
    );
  }

  /**
   * What one guard run decides with what `sql` shows: pause on a hand edit, else compare and apply the verdict
   * (rollback on regression, advance when healthy and held long enough); a changed verdict alone is stored too.
   */
  private async judge(sql: Sql, environment: string, flag: string, now: number): Promise<Finding> {
    const run = await this.store.get(environment, flag, sql);
    if (!run || !isActive(run.state)) return { plan: null, run };
    const config = await readFlagConfig(sql, environment, flag);
    if (!config) return { plan: null, run };
    if (run.state === 'running' && isDrifted(config.state, run, flag)) return { plan: { before: run, t: onDrift(run, now), evidence: null } };
    const exposed = operatorExposure(config.state, run.document.canary);
    if (run.state === 'running' && exposed.length > 0) {
      return {
        plan: {
          before: run,
          t: onExposure(
            run,
            now,
            exposed.map((e) => `${e.path}: ${e.message}`),
          ),
          evidence: null,
        },
      };
    }
    const comparison = await this.comparisonOf(sql, environment, flag, run);
    const t = onGuard(run, comparison, now);
    if (t.action) return { plan: { before: run, t, evidence: comparison } };
    // Only a change of verdict is stored (not every batch's numbers): GET computes the live comparison anyway.
    if (run.lastDecision?.decision !== comparison.decision) return { plan: { before: run, t, evidence: null } };
    return { plan: null, run: t.run };
  }

  /**
   * One guard run. Decided first on a plain read (most runs change nothing and write nothing); when there is
   * something to write, decided again inside the fenced write transaction, on what it reads, and written there.
   * Returns the run after it.
   */
  async guard(environment: string, flag: string): Promise<CanaryRun | null> {
    const now = this.o.now();
    const first = await this.judge(this.o.store, environment, flag, now);
    if (!first.plan) return first.run;
    const { value } = await this.o.writer.write(GUARD_ACTOR, async (w) => {
      await this.o.duties.fence(w.tx, 'canary-guard');
      const found = await this.judge(w.tx, environment, flag, now);
      if (!found.plan) return { run: found.run, t: null };
      const { before, t, evidence } = found.plan;
      if (!t.action) {
        await this.store.save(w.tx, environment, flag, t.run);
        return { run: t.run, t: null };
      }
      const applied = await this.applyIn(w, environment, flag, before, t, evidence);
      return { run: applied.run, t: applied };
    });
    if (value.t) this.counted(value.t, GUARD_ACTOR);
    return value.run;
  }

  /**
   * Stores a transition inside the write `w`: re-renders the flag state when it changed, and audits it with its
   * evidence. Answers the transition as stored (with its frozen reference, and a note on what the rollback could not
   * take away).
   */
  private async applyIn(
    w: WriteContext,
    environment: string,
    flag: string,
    before: CanaryRun,
    t: Transition,
    evidence: Comparison | null,
  ): Promise<Transition> {
    // A new comparison window freezes its tail-test reference now, before any of its data exists.
    if (t.action === 'canary.start' || t.run.windowStartedAt !== before.windowStartedAt)
      t = { ...t, run: { ...t.run, reference: await this.referenceFor(w.tx, environment, flag, t.run) } };
    // A rollback cannot take away what the operator's own rules serve: say so where people look.
    if (t.run.state === 'rolled_back' && t.flagChanged) {
      const config = await readFlagConfig(w.tx, environment, flag);
      const exposed = config ? operatorExposure(config.state, t.run.document.canary) : [];
      if (exposed.length > 0)
        t = {
          ...t,
          why: `${t.why}; note: "${t.run.document.canary}" is still served outside the canary (${exposed.map((e) => `${e.path}: ${e.message}`).join('; ')})`,
        };
    }
    await this.store.save(w.tx, environment, flag, t.run);
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
              ...(evidence.sources ? { sources: await this.namedSources(w.tx, evidence.sources) } : {}),
            },
          }
        : {}),
    };
    if (t.flagChanged) {
      const run = t.run;
      await this.o.flags.mutateState(
        w,
        environment,
        flag,
        (current) => {
          const next = storedOf(renderFlagState(current, run, flag));
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
    return t;
  }

  /** Counts a committed transition. */
  private counted(t: Transition, actor: Actor): void {
    this.o.instruments?.canaryDecisions.inc({ action: t.action ?? 'canary.update', by: actor === GUARD_ACTOR ? 'guard' : 'operator' });
  }

  /** The evidence sources with each SDK key's name and kind, for the audit entry. */
  private async namedSources(sql: Sql, sources: NonNullable<Comparison['sources']>) {
    const named = async (ids: string[]) => {
      const out: Array<{ id: string; name: string | null; clientSide: boolean | null }> = [];
      for (const id of ids) {
        const t = await sql.get<{ name: string; client_side: unknown }>('SELECT name, client_side FROM tokens WHERE id = ?', [id]);
        out.push({ id, name: t?.name ?? null, clientSide: t ? bool(t.client_side) : null });
      }
      return out;
    };
    return {
      ...sources,
      server: { ...sources.server, keys: await named(sources.server.keys) },
      client: { ...sources.client, keys: await named(sources.client.keys) },
    };
  }

  /**
   * Validates and starts a canary (PUT). Answers whether it was created (201) or replaced a finished one (200).
   * Checked and written in one transaction, so two starts cannot both pass the "no active canary" check.
   */
  async put(environment: string, flag: string, body: CanaryInput, actor: Actor): Promise<{ run: CanaryRun; created: boolean }> {
    const { value } = await this.o.writer.write(actor, async (w) => {
      const config = await this.requireFlag(w.tx, environment, flag);
      const segments = new Set((await w.tx.all<{ key: string }>('SELECT key FROM segments')).map((r) => r.key));
      const checked = validateCanaryDocument(body, config, (key) => segments.has(key));
      if (!checked.value) throw problem('validation', `${checked.issues[0]?.path || '/'}: ${checked.issues[0]?.message}`, { errors: checked.issues });
      const existing = await this.store.get(environment, flag, w.tx);
      if (existing && isActive(existing.state)) {
        throw problem(
          'conflict',
          `A canary of "${flag}" is ${existing.state} in "${environment}"; roll it back, promote it or DELETE it before starting another.`,
        );
      }
      this.refuseExposure(config.state, checked.value.canary, 'start');
      const run = startRun(checked.value, this.o.now());
      const stage = checked.value.stages[0]!;
      const t = await this.applyIn(
        w,
        environment,
        flag,
        run,
        {
          run,
          action: 'canary.start',
          why: `canary "${run.document.canary}" against "${run.document.control}" started at ${'segment' in stage ? `cohort "${stage.segment}"` : `${stage.percent}%`}`,
          flagChanged: true,
        },
        null,
      );
      return { t, created: !existing };
    });
    this.counted(value.t, actor);
    return { run: value.t.run, created: value.created };
  }

  /** A manual operation (POST .../canary/{action}), decided and written in one transaction. */
  async manual(environment: string, flag: string, action: ManualAction, actor: Actor, reason?: string): Promise<CanaryRun> {
    const { value } = await this.o.writer.write(actor, async (w) => {
      const config = await this.requireFlag(w.tx, environment, flag);
      const run = await this.store.get(environment, flag, w.tx);
      if (!run) throw problem('not-found', `No canary of "${flag}" in "${environment}".`);
      if (action === 'resume') this.refuseExposure(config.state, run.document.canary, 'resume');
      let t: Transition;
      try {
        t = onManual(run, action, this.o.now(), reason);
      } catch (err) {
        if (err instanceof CanaryConflict) throw problem('conflict', err.message);
        throw err;
      }
      const evidence =
        action === 'rollback' || action === 'promote' || action === 'advance' ? await this.comparisonOf(w.tx, environment, flag, run) : null;
      return this.applyIn(w, environment, flag, run, t, evidence);
    });
    this.counted(value, actor);
    return value.run;
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
  async remove(environment: string, flag: string, actor: Actor): Promise<void> {
    await this.o.writer.write(actor, async (w) => {
      await this.requireFlag(w.tx, environment, flag);
      const run = await this.store.get(environment, flag, w.tx);
      if (!run) throw problem('not-found', `No canary of "${flag}" in "${environment}".`);
      // Ingest stops recording its evidence with this commit; the guard's owner prunes what was recorded.
      await this.store.delete(w.tx, environment, flag);
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
  async status(environment: string, flag: string): Promise<CanaryStatus> {
    await this.requireFlag(this.o.store, environment, flag);
    const run = await this.store.get(environment, flag);
    if (!run) throw problem('not-found', `No canary of "${flag}" in "${environment}".`);
    return this.statusOf(environment, flag, run);
  }

  /** The status document of a run (live comparison while it is active). */
  async statusOf(environment: string, flag: string, run: CanaryRun): Promise<CanaryStatus> {
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
      comparison: active ? { at: iso(now), ...(await this.comparisonOf(this.o.store, environment, flag, run)) } : null,
      lastDecision: run.lastDecision ? { at: iso(run.lastDecision.at), decision: run.lastDecision.decision, why: run.lastDecision.why } : null,
      heldSeconds: Math.floor(heldMs(run, now) / 1000),
      exposure: await this.exposureOf(environment, flag, run, now),
    };
  }

  private async exposureOf(environment: string, flag: string, run: CanaryRun, now: number): Promise<CanaryExposure> {
    const config = await readFlagConfig(this.o.store, environment, flag);
    const outsideCanary = config ? operatorExposure(config.state, run.document.canary) : [];
    // Whole minutes only: the minute of the decision mixes traffic from before it.
    const from = Math.max(
      Math.floor((isActive(run.state) ? run.stageStartedAt : run.updatedAt) / MINUTE) * MINUTE + MINUTE,
      Math.floor(now / MINUTE) * MINUTE - 60 * MINUTE,
    );
    const byVariant = await this.o.metrics.evaluationsByVariant(environment, flag, from, now);
    let evaluations = 0;
    for (const n of byVariant.values()) evaluations += n;
    const canaryEvaluations = byVariant.get(run.document.canary) ?? 0;
    return {
      outsideCanary,
      measured: evaluations > 0 ? { since: iso(from), evaluations, canaryEvaluations, share: canaryEvaluations / evaluations } : null,
    };
  }

  private async requireFlag(sql: Sql, environment: string, flag: string) {
    const env = await sql.get<{ key: string }>('SELECT key FROM environments WHERE key = ?', [environment]);
    if (!env) throw problem('not-found', `No environment "${environment}".`);
    const config = await readFlagConfig(sql, environment, flag);
    if (!config) throw problem('not-found', `No flag "${flag}" in "${environment}".`);
    return config;
  }
}
