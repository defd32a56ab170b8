/** Reading delivery receipts from kill responses and from the connected-SDK list (shared by CLI and console). */
import { describe, expect, it } from 'vitest';
import { describeReceipt, isComplete, receiptFromResponse, receiptFromSdks } from '../../server/cli/delivery-receipt.js';

describe('delivery receipts', () => {
  it('reads the receipt of a kill answered with ?waitMs', () => {
    const r = receiptFromResponse({ enabled: false, environmentVersion: 12, delivery: { environment: 'production', version: 12, connected: 3, applied: 3, complete: true, p50Ms: 4, p99Ms: 9, maxMs: 9, elapsedMs: 9 } });
    expect(r).toMatchObject({ version: 12, connected: 3, applied: 3 });
    expect(isComplete(r!)).toBe(true);
    expect(describeReceipt(r!)).toBe('3/3 SDKs applied version 12 (p50 4 ms, max 9 ms)');
    expect(receiptFromResponse({ enabled: false, environmentVersion: 12 })).toBeNull();
  });

  it('counts SDKs that applied the version or a later one, and names the ones that have not', () => {
    const at = Date.parse('2026-01-01T00:00:00.000Z');
    const r = receiptFromSdks(
      {
        environment: 'production',
        version: 13,
        items: [
          { id: 'a', sdk: { name: 'aviary-node', version: '0.1.0' }, connectedAt: '2026-01-01T00:00:00Z', appliedVersion: 12, appliedAt: '2026-01-01T00:00:00.005Z' },
          { id: 'b', sdk: { name: 'aviary-node', version: '0.1.0' }, connectedAt: '2026-01-01T00:00:00Z', appliedVersion: 13, appliedAt: '2026-01-01T00:00:00.011Z' },
          { id: 'c', sdk: { name: 'aviary-node', version: '0.1.0' }, connectedAt: '2026-01-01T00:00:00Z', appliedVersion: 11, appliedAt: null },
        ],
      },
      12,
      at,
    );
    expect(r).toEqual({ version: 12, connected: 3, applied: 2, latenciesMs: [5, 11], pending: ['c'] });
    expect(isComplete(r)).toBe(false);
    expect(describeReceipt(r)).toBe('2/3 SDKs applied version 12 (p50 5 ms, max 11 ms)');
  });

  it('with no SDK connected there is nothing to wait for', () => {
    const r = receiptFromSdks({ items: [] }, 5, 0);
    expect(isComplete(r)).toBe(true);
    expect(describeReceipt(r)).toMatch(/^no SDKs connected/);
  });
});
