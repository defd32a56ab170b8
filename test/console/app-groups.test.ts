import type { ConnectedSdk } from '@aviary/api-client';
import { describe, expect, it } from 'vitest';
import { groupByApp, instancesTitle } from '../../console/src/lib/app-groups.js';

const sdk = (id: string, appliedVersion: number | null, app?: { name?: string; version?: string }): ConnectedSdk =>
  ({
    id,
    sdk: { name: '@aviary/sdk', version: '1' },
    connectedAt: '2026-01-01T00:00:00Z',
    appliedVersion,
    appliedAt: null,
    ...(app ? { app } : {}),
  }) as ConnectedSdk;

describe('groupByApp', () => {
  it('groups SDKs by app name and version (versions in numeric order, unnamed last) and counts those on the version', () => {
    const groups = groupByApp(
      [
        sdk('a', 7, { name: 'storefront', version: '4.10.0' }),
        sdk('b', 6),
        sdk('c', 7, { name: 'storefront', version: '4.9.0' }),
        sdk('d', 5, { name: 'storefront', version: '4.10.0' }),
        sdk('e', 8, { name: 'storefront', version: '4.10.0' }),
        sdk('f', 7, { name: 'worker' }),
      ],
      7,
    );
    expect(groups.map((g) => [g.label, g.sdks.map((s) => s.id), g.applied])).toEqual([
      ['storefront 4.9.0', ['c'], 1],
      ['storefront 4.10.0', ['a', 'd', 'e'], 2],
      ['worker', ['f'], 1],
      ['unnamed app', ['b'], 0],
    ]);
    expect(instancesTitle(groups[1]!)).toBe('SDK instances: a, d, e');
  });
});
