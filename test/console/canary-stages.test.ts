import { describe, expect, it } from 'vitest';
import { stageStarts } from '../../console/src/lib/canary-stages.js';
import type { AuditEntry, CanaryStatus } from '../../console/src/lib/types.js';

const T0 = Date.parse('2026-12-06T10:00:00Z');
const iso = (min: number) => new Date(T0 + min * 60_000).toISOString();
const entry = (action: string, min: number, after: unknown, resourceType = 'canary') => ({ action, at: iso(min), after, resourceType }) as AuditEntry;
const status = (over: Partial<CanaryStatus>) =>
  ({
    stages: [{ segment: 'internal' }, { percent: 5 }, { percent: 50 }, { percent: 100 }],
    stage: 2,
    state: 'running',
    startedAt: iso(0),
    stageStartedAt: iso(9),
    ...over,
  }) as CanaryStatus;

describe('stageStarts', () => {
  it('takes the start and each advance of this canary from the audit log, the current stage from the status if missing', () => {
    const entries = [
      entry('canary.advance', -30, { stage: 1 }), // an earlier canary of the same flag
      entry('canary.start', 0, { stage: 0 }),
      entry('canary.pause', 2, { stage: 0 }),
      entry('canary.advance', 3, { stage: 1 }),
      entry('flag-state.update', 4, { stage: 2 }, 'flag-state'),
    ];
    expect(stageStarts(status({}), entries)).toEqual([
      { stage: 0, at: (T0 + 0) / 1000, label: 'cohort “internal”' },
      { stage: 1, at: (T0 + 3 * 60_000) / 1000, label: '5%' },
      { stage: 2, at: (T0 + 9 * 60_000) / 1000, label: '50%' },
    ]);
    // With its advance entry, the current stage starts when it was entered (stageStartedAt moves with pauses).
    expect(stageStarts(status({}), [...entries, entry('canary.advance', 6, { stage: 2 })]).map((s) => s.at)).toEqual(
      [0, 3, 6].map((m) => (T0 + m * 60_000) / 1000),
    );
  });
});
