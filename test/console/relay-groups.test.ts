import type { ConnectedSdk } from '@aviary/api-client';
import { describe, expect, it } from 'vitest';
import { groupByRelay, pathLabel } from '../../console/src/lib/relay-groups.js';

const sdk = (id: string, appliedVersion: number | null, via?: string[]): ConnectedSdk =>
  ({
    id,
    sdk: { name: '@aviary/sdk', version: '1' },
    connectedAt: '2026-01-01T00:00:00Z',
    appliedVersion,
    appliedAt: null,
    ...(via ? { via } : {}),
  }) as ConnectedSdk;

describe('groupByRelay', () => {
  it('groups SDKs by relay path, direct first, and counts those on the version', () => {
    const groups = groupByRelay(
      [sdk('a', 7, ['eu', 'eu-edge']), sdk('b', 6), sdk('c', 7, ['eu']), sdk('d', 5, ['eu', 'eu-edge']), sdk('e', 8, [])],
      7,
    );
    expect(groups.map((g) => [pathLabel(g.path), g.sdks.map((s) => s.id), g.applied])).toEqual([
      ['connected directly', ['b', 'e'], 1],
      ['via eu', ['c'], 1],
      ['via eu → eu-edge', ['a', 'd'], 1],
    ]);
  });
});
