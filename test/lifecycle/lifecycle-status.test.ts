/** The lifecycle rules at their edges (the pure function the API, the console and the gauge share). */
import { describe, expect, it } from 'vitest';
import { LIFECYCLE_WINDOW_MS as W, lifecycleOf, type VariantUsage } from '../../server/lifecycle/lifecycle.js';

const NOW = Date.parse('2026-05-01T00:00:00Z');
const use = (variant: string, first: number, last: number, evaluations = 10): VariantUsage => ({
  variant,
  firstEvaluatedAt: first,
  lastEvaluatedAt: last,
  evaluations,
});

describe('lifecycleOf', () => {
  it('new until the window has passed since creation, then inactive', () => {
    expect(lifecycleOf(NOW - W + 1, [], NOW).status).toBe('new');
    expect(lifecycleOf(NOW - W, [], NOW).status).toBe('inactive');
  });
  it('rows with no evaluations are not usage', () => {
    expect(lifecycleOf(NOW - 1000, [use('on', NOW - 10, NOW - 5, 0)], NOW)).toMatchObject({ status: 'new', lastEvaluatedAt: null });
  });
  it('inactive once the last evaluation is a window old', () => {
    expect(lifecycleOf(0, [use('on', NOW - 20 * 86_400_000, NOW - W)], NOW)).toMatchObject({ status: 'inactive', lastEvaluatedAt: NOW - W });
    expect(lifecycleOf(0, [use('on', NOW - 20 * 86_400_000, NOW - W + 1)], NOW).status).toBe('launched');
  });
  it('launched needs a first evaluation at least a window ago', () => {
    expect(lifecycleOf(0, [use('on', NOW - W + 1, NOW)], NOW).status).toBe('active');
    expect(lifecycleOf(0, [use('on', NOW - W, NOW)], NOW)).toMatchObject({ status: 'launched', variant: 'on', since: NOW - W });
  });
  it('since is the last evaluation of any other value', () => {
    const l = lifecycleOf(0, [use('on', NOW - 30 * 86_400_000, NOW), use('off', NOW - 30 * 86_400_000, NOW - 10 * 86_400_000)], NOW);
    expect(l).toMatchObject({ status: 'launched', variant: 'on', since: NOW - 10 * 86_400_000, firstEvaluatedAt: NOW - 30 * 86_400_000 });
  });
  it('two values in the window, or only the caller default, are active', () => {
    expect(lifecycleOf(0, [use('on', NOW - 30 * 86_400_000, NOW), use('off', NOW - 30 * 86_400_000, NOW - 86_400_000)], NOW).status).toBe('active');
    expect(lifecycleOf(0, [use('on', NOW - 30 * 86_400_000, NOW), use('', NOW - 86_400_000, NOW - 86_400_000)], NOW).status).toBe('active');
    expect(lifecycleOf(0, [use('', NOW - 30 * 86_400_000, NOW)], NOW).status).toBe('active');
  });
});
