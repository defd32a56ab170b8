/** Reading delivery receipts from kill answers and from the connected-SDK list (shared by CLI and console). */
import { describe, expect, it } from 'vitest';
import { deliveryFromReceipt, deliveryFromSdks, describeDelivery, isComplete, type ConnectedSdk } from '@aviary/api-client';

describe('delivery receipts', () => {
  it('reads the receipt of a kill answered with ?waitMs', () => {
    const d = deliveryFromReceipt({
      environment: 'production',
      version: 12,
      connected: 3,
      applied: 3,
      complete: true,
      p50Ms: 4,
      p99Ms: 9,
      maxMs: 9,
      elapsedMs: 9,
    });
    expect(d).toMatchObject({ version: 12, connected: 3, applied: 3 });
    expect(isComplete(d)).toBe(true);
    expect(describeDelivery(d)).toBe('3/3 SDKs applied version 12 (p50 4 ms, max 9 ms)');
  });

  it('trusts a receipt that says it is complete, and reads an incomplete one as it is', () => {
    // Counts taken at different instants: an SDK connected after the change and applied it on hydrate.
    expect(
      deliveryFromReceipt({
        environment: 'p',
        version: 3,
        connected: 2,
        applied: 1,
        complete: true,
        p50Ms: null,
        p99Ms: null,
        maxMs: null,
        elapsedMs: 5,
      }),
    ).toMatchObject({ applied: 2, maxMs: 5 });
    const partial = deliveryFromReceipt({ environment: 'p', version: 3, connected: 2, applied: 1, complete: false });
    expect(isComplete(partial)).toBe(false);
    expect(describeDelivery(partial)).toBe('1/2 SDKs applied version 3');
  });

  it('counts SDKs that applied the version or a later one, and names the ones that have not', () => {
    const at = Date.parse('2026-01-01T00:00:00.000Z');
    const sdk = (id: string, appliedVersion: number, appliedAt: string | null): ConnectedSdk => ({
      id,
      sdk: { name: 'aviary-node', version: '0.1.0' },
      connectedAt: '2026-01-01T00:00:00Z',
      appliedVersion,
      appliedAt,
    });
    const d = deliveryFromSdks(
      {
        environment: 'production',
        version: 13,
        items: [sdk('a', 12, '2026-01-01T00:00:00.005Z'), sdk('b', 13, '2026-01-01T00:00:00.011Z'), sdk('c', 11, null)],
      },
      12,
      at,
    );
    expect(d).toEqual({ version: 12, connected: 3, applied: 2, latenciesMs: [5, 11], pending: ['c'] });
    expect(isComplete(d)).toBe(false);
    expect(describeDelivery(d)).toBe('2/3 SDKs applied version 12 (p50 5 ms, max 11 ms)');
  });

  it('with no SDK connected there is nothing to wait for', () => {
    const d = deliveryFromSdks({ environment: 'production', version: 5, items: [] }, 5, 0);
    expect(isComplete(d)).toBe(true);
    expect(describeDelivery(d)).toMatch(/^no SDKs connected/);
  });
});
