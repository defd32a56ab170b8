/**
 * When each stage of a canary started, for the charts' stage boundaries. `GET .../canary` has only the current
 * stage's start (`stageStartedAt`); the earlier ones come from the audit log, where every start and every advance of
 * a canary (by hand or by the guard) is an entry whose `after` names the stage it moved to (server/canary/canary-service.ts).
 */
import { timeMs } from '@aviary/api-client';
import type { AuditEntry, CanaryStage, CanaryStatus } from './types.js';

export interface StageStart {
  /** Index of the stage in the canary's `stages`. */
  stage: number;
  /** Epoch seconds. */
  at: number;
  label: string;
}

export function stageLabel(s: CanaryStage): string {
  return 'segment' in s ? `cohort “${s.segment}”` : `${s.percent}%`;
}

/**
 * The starts of stages 0..`c.stage` of the canary started at `c.startedAt`: from its `canary.start` and `canary.advance`
 * entries (others, and entries of earlier canaries, are ignored); the current stage's from the status when the entries lack it.
 */
export function stageStarts(c: CanaryStatus, entries: readonly AuditEntry[]): StageStart[] {
  const since = timeMs(c.startedAt);
  const starts = new Map<number, number>();
  for (const e of entries) {
    if (e.resourceType !== 'canary' || (e.action !== 'canary.start' && e.action !== 'canary.advance')) continue;
    const at = timeMs(e.at);
    if (!(at >= since)) continue;
    const stage = e.action === 'canary.start' ? 0 : (e.after as { stage?: unknown } | null)?.stage;
    if (typeof stage !== 'number' || stage < 0 || stage > c.stage || stage >= c.stages.length) continue;
    // A stage entered twice cannot happen within one canary; keep the earliest if it ever did.
    if (!starts.has(stage) || at < starts.get(stage)!) starts.set(stage, at);
  }
  starts.set(0, since);
  // The current stage's entry may not be on the page read: its start is in the status (shifted by pauses, so second).
  if (!starts.has(c.stage)) starts.set(c.stage, timeMs(c.stageStartedAt));
  return [...starts.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([stage, at]) => ({ stage, at: Math.floor(at / 1000), label: stageLabel(c.stages[stage]!) }));
}
