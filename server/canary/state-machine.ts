/**
 * The canary state machine, pure: every transition takes the current run and `now` (epoch ms) and answers the next
 * run plus what to record. The scheduler persists the result and turns it into a flag-state change.
 *
 *   running ──pause──▶ paused ──resume──▶ running
 *   running|paused ──regression (guard) | rollback──▶ rolled_back
 *   running ──healthy and held ≥ stageDurationSeconds (guard) | advance──▶ next stage … ──▶ completed
 *   running|paused|rolled_back ──promote──▶ promoted
 *
 * A pause stops the hold clock (resuming shifts the stage start by the paused time) but not the guard: traffic still
 * reaches the canary while paused, so a regression still rolls it back.
 */
import type { SparseHistogram } from '@aviary/sdk/core';
import { percentAt, type CanaryDocument } from './document.js';
import type { Comparison } from './stats.js';

/** Lifecycle state (CONTRACT §4). */
export type CanaryState = 'running' | 'paused' | 'rolled_back' | 'promoted' | 'completed';

/** The latest guard verdict, kept with the run and shown by `GET .../canary`. */
export interface GuardVerdict {
  at: number;
  decision: Comparison['decision'];
  why: string;
}

/** A canary in progress (or finished), as persisted. */
export interface CanaryRun {
  document: CanaryDocument;
  state: CanaryState;
  /** Index into `document.stages`. */
  stage: number;
  /** When the hold of the current stage began (shifted forward by paused time). */
  stageStartedAt: number;
  /**
   * Start of the guard's comparison window: when the current stage began. A 100% stage keeps the previous stage's
   * window, since control gets no traffic of its own there.
   */
  windowStartedAt: number;
  pausedAt: number | null;
  startedAt: number;
  updatedAt: number;
  lastDecision: GuardVerdict | null;
  /**
   * The tail test's reference: the control's latency in the hour before the window, frozen when the window opens so
   * that nothing reported later (with back-dated minutes) can move the threshold. Undefined: not taken yet.
   */
  reference?: SparseHistogram | null;
}

/** Manual operations (CONTRACT §6). */
export type ManualAction = 'pause' | 'resume' | 'advance' | 'rollback' | 'promote';

/** What a transition did, for the audit log. `flagChanged` says the flag state must be re-rendered. */
export interface Transition {
  run: CanaryRun;
  /** Audit action, e.g. `canary.advance`; null when nothing worth auditing happened. */
  action: string | null;
  why: string;
  flagChanged: boolean;
}

export const ACTIVE_STATES: readonly CanaryState[] = ['running', 'paused'];
export const isActive = (s: CanaryState) => s === 'running' || s === 'paused';

/** A new run at stage 0. */
export function startRun(document: CanaryDocument, now: number): CanaryRun {
  return {
    document,
    state: 'running',
    stage: 0,
    stageStartedAt: now,
    windowStartedAt: now,
    pausedAt: null,
    startedAt: now,
    updatedAt: now,
    lastDecision: null,
  };
}

/** Milliseconds the current stage has been held (paused time excluded). */
export function heldMs(run: CanaryRun, now: number): number {
  return Math.max(0, (run.pausedAt ?? now) - run.stageStartedAt);
}

/** When the hold of the current stage expires (epoch ms). */
export function holdExpiresAt(run: CanaryRun): number {
  return run.stageStartedAt + run.document.stageDurationSeconds * 1000;
}

function nextStage(run: CanaryRun, now: number): CanaryRun {
  const last = run.document.stages.length - 1;
  if (run.stage >= last) {
    return { ...run, state: 'completed', pausedAt: null, updatedAt: now };
  }
  const stage = run.stage + 1;
  const keepWindow = percentAt(run.document, stage) >= 100 && percentAt(run.document, run.stage) < 100;
  return {
    ...run,
    stage,
    stageStartedAt: now,
    windowStartedAt: keepWindow ? run.windowStartedAt : now,
    pausedAt: run.state === 'paused' ? now : null,
    updatedAt: now,
  };
}

function describeStage(doc: CanaryDocument, stage: number): string {
  const s = doc.stages[stage];
  if (!s) return 'completion';
  return 'segment' in s ? `stage ${stage} (cohort "${s.segment}")` : `stage ${stage} (${s.percent}%)`;
}

/**
 * Applies a guard verdict. Regression rolls back at once (running or paused); a healthy verdict advances a running
 * canary whose hold has expired. Anything else only records the verdict.
 */
export function onGuard(run: CanaryRun, comparison: Pick<Comparison, 'decision' | 'why'>, now: number): Transition {
  if (!isActive(run.state)) return { run, action: null, why: 'not active', flagChanged: false };
  const verdict: GuardVerdict = { at: now, decision: comparison.decision, why: comparison.why };
  const recorded = { ...run, lastDecision: verdict };
  if (comparison.decision === 'regression') {
    return {
      run: { ...recorded, state: 'rolled_back', pausedAt: null, updatedAt: now },
      action: 'canary.rollback',
      why: `automatic rollback at ${describeStage(run.document, run.stage)}: ${comparison.why}`,
      flagChanged: true,
    };
  }
  if (comparison.decision === 'healthy' && run.state === 'running' && now >= holdExpiresAt(run)) {
    const next = nextStage(recorded, now);
    return {
      run: next,
      action: next.state === 'completed' ? 'canary.complete' : 'canary.advance',
      why:
        `automatic ${next.state === 'completed' ? 'completion' : `advance to ${describeStage(run.document, next.stage)}`} ` +
        `after holding ${describeStage(run.document, run.stage)} for ${Math.round(heldMs(run, now) / 1000)} s: ${comparison.why}`,
      flagChanged: true,
    };
  }
  return { run: recorded, action: null, why: comparison.why, flagChanged: false };
}

/** The error a manual action answers when the state does not allow it (→ 409). */
export class CanaryConflict extends Error {}

/** Applies a manual operation, or throws `CanaryConflict`. */
export function onManual(run: CanaryRun, action: ManualAction, now: number, reason?: string): Transition {
  const by = reason ? `: ${reason}` : '';
  switch (action) {
    case 'pause':
      if (run.state !== 'running') throw new CanaryConflict(`cannot pause a canary that is ${run.state}`);
      return {
        run: { ...run, state: 'paused', pausedAt: now, updatedAt: now },
        action: 'canary.pause',
        why: `paused by hand${by}`,
        flagChanged: false,
      };
    case 'resume': {
      if (run.state !== 'paused') throw new CanaryConflict(`cannot resume a canary that is ${run.state}`);
      const pausedFor = now - (run.pausedAt ?? now);
      return {
        run: { ...run, state: 'running', pausedAt: null, stageStartedAt: run.stageStartedAt + pausedFor, updatedAt: now },
        action: 'canary.resume',
        why: `resumed by hand after ${Math.round(pausedFor / 1000)} s paused${by}`,
        // Re-render: a hand edit of the flag may have paused it, and resuming restores the stage.
        flagChanged: true,
      };
    }
    case 'advance': {
      if (!isActive(run.state)) throw new CanaryConflict(`cannot advance a canary that is ${run.state}`);
      const next = nextStage(run, now);
      return {
        run: next,
        action: next.state === 'completed' ? 'canary.complete' : 'canary.advance',
        why: `${next.state === 'completed' ? 'completed' : `advanced to ${describeStage(run.document, next.stage)}`} by hand${by}`,
        flagChanged: true,
      };
    }
    case 'rollback':
      if (!isActive(run.state)) throw new CanaryConflict(`cannot roll back a canary that is ${run.state}`);
      return {
        run: { ...run, state: 'rolled_back', pausedAt: null, updatedAt: now },
        action: 'canary.rollback',
        why: `rolled back by hand${by}`,
        flagChanged: true,
      };
    case 'promote':
      if (!isActive(run.state) && run.state !== 'rolled_back') throw new CanaryConflict(`cannot promote a canary that is ${run.state}`);
      return {
        run: { ...run, state: 'promoted', pausedAt: null, updatedAt: now },
        action: 'canary.promote',
        why: `promoted by hand${by}`,
        flagChanged: true,
      };
  }
}

/** Pauses a running canary whose flag state was edited by hand under it (see flag-render.ts `isDrifted`). */
export function onDrift(run: CanaryRun, now: number): Transition {
  if (run.state !== 'running') return { run, action: null, why: '', flagChanged: false };
  return {
    run: { ...run, state: 'paused', pausedAt: now, updatedAt: now },
    action: 'canary.pause',
    why: 'paused automatically: the flag state the canary controls (its rules and fallthrough) was changed by hand; resume re-applies the stage',
    flagChanged: false,
  };
}

/**
 * Pauses a running canary when the operator's own state starts serving the canary variant outside its rollout (a
 * rule or target added by hand; see flag-render.ts `operatorExposure`): that traffic is not a random sample, and a
 * rollback would not take it away. Resuming is refused until it is gone.
 */
export function onExposure(run: CanaryRun, now: number, what: string[]): Transition {
  if (run.state !== 'running') return { run, action: null, why: '', flagChanged: false };
  return {
    run: { ...run, state: 'paused', pausedAt: now, updatedAt: now },
    action: 'canary.pause',
    why: `paused automatically: the flag's own state now serves "${run.document.canary}" outside the canary (${what.join('; ')}); that traffic is not a random sample and a rollback would not remove it`,
    flagChanged: false,
  };
}
