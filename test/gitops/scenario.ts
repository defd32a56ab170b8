/**
 * A server with everything flags as code must carry: every operator, segments, rollouts, prerequisites, a killed
 * flag, a running canary and an archived flag. Used by the SQLite and PostgreSQL apply tests and the CLI tests.
 */
import { expect } from 'vitest';
import type { api } from '../helpers/server.js';

type Api = ReturnType<typeof api>;

const cond = (attribute: string, op: string, values?: unknown[]) => ({ attribute, op, ...(values ? { values } : {}) });

/** One rule per operator (CONTRACT §1), negations, a segment condition and a rollout. */
export const EVERY_OPERATOR_RULES = [
  { id: 'in', conditions: [cond('country', 'in', ['NL', 'BE'])], serve: { variant: 'on' } },
  { id: 'starts', conditions: [cond('email', 'startsWith', ['ops-'])], serve: { variant: 'on' } },
  { id: 'ends', conditions: [cond('email', 'endsWith', ['@acme.com'])], serve: { variant: 'on' } },
  { id: 'contains', conditions: [{ ...cond('plan', 'contains', ['pro']), negate: true }], serve: { variant: 'off' } },
  { id: 'matches', conditions: [cond('email', 'matches', ['^[a-z]+@example\\.org$'])], serve: { variant: 'on' } },
  {
    id: 'numbers',
    conditions: [cond('age', 'lt', [10]), cond('age', 'lte', [9]), cond('score', 'gt', [1]), cond('score', 'gte', [2])],
    serve: { variant: 'on' },
  },
  { id: 'semver', conditions: [cond('appVersion', 'semverEq', ['1.2.3'])], serve: { variant: 'on' } },
  {
    id: 'semver-range',
    conditions: [cond('appVersion', 'semverLt', ['2.0.0']), cond('appVersion', 'semverGt', ['1.0.0'])],
    serve: { variant: 'off' },
  },
  {
    id: 'dates',
    conditions: [cond('signup', 'before', ['2030-01-01T00:00:00Z']), cond('signup', 'after', [1_600_000_000_000])],
    serve: { variant: 'on' },
  },
  { id: 'exists', conditions: [cond('beta', 'exists')], serve: { variant: 'on' } },
  {
    id: 'beta-half',
    conditions: [{ segment: 'beta-testers' }],
    serve: {
      rollout: {
        bucketBy: 'key',
        weights: [
          { variant: 'on', percent: 50 },
          { variant: 'off', percent: 50 },
        ],
      },
    },
  },
];

/** Fills a fresh server (production, staging, development) with the scenario. */
export async function populate(a: Api): Promise<void> {
  const ok = async (p: Promise<{ status: number; body: unknown }>, status = 200) => {
    const r = await p;
    expect(r.status, JSON.stringify(r.body)).toBe(status);
    return r;
  };
  await ok(
    a.post('/api/v1/segments', {
      key: 'beta-testers',
      description: 'people who asked',
      included: ['user-1'],
      excluded: ['user-2'],
      rules: [{ id: 'staff', conditions: [cond('email', 'endsWith', ['@acme.com'])] }],
    }),
    201,
  );
  await ok(a.post('/api/v1/segments', { key: 'internal', included: ['u-9'], excluded: [], rules: [] }), 201);
  await ok(a.post('/api/v1/flags', { key: 'checkout', kind: 'boolean', description: 'new checkout', tags: ['payments', 'web'] }), 201);
  await ok(
    a.put('/api/v1/flags/checkout/environments/production', {
      enabled: true,
      offVariant: 'off',
      targets: [{ variant: 'on', keys: ['user-1', 'user-2'] }],
      rules: EVERY_OPERATOR_RULES,
      fallthrough: {
        rollout: {
          bucketBy: 'key',
          weights: [
            { variant: 'on', percent: 5.5 },
            { variant: 'off', percent: 94.5 },
          ],
        },
      },
    }),
  );
  await ok(
    a.post('/api/v1/flags', {
      key: 'theme',
      kind: 'string',
      variants: [
        { key: 'light', value: 'light' },
        { key: 'dark', value: 'dark' },
      ],
    }),
    201,
  );
  await ok(
    a.post('/api/v1/flags', {
      key: 'limits',
      kind: 'json',
      variants: [
        { key: 'small', value: { max: 1, tags: ['a'] } },
        { key: 'big', value: { max: 10 } },
      ],
    }),
    201,
  );
  await ok(a.post('/api/v1/flags', { key: 'parent', kind: 'boolean' }), 201);
  await ok(a.post('/api/v1/flags', { key: 'child', kind: 'boolean' }), 201);
  await ok(
    a.put('/api/v1/flags/child/environments/production', {
      enabled: true,
      offVariant: 'off',
      prerequisites: [{ flag: 'parent', variants: ['on'] }],
      targets: [],
      rules: [],
      fallthrough: { variant: 'on' },
    }),
  );
  await ok(a.post('/api/v1/flags', { key: 'killme', kind: 'boolean' }), 201);
  await ok(
    a.put('/api/v1/flags/killme/environments/production', {
      enabled: true,
      offVariant: 'off',
      targets: [],
      rules: [],
      fallthrough: { variant: 'on' },
    }),
  );
  await ok(a.post('/api/v1/flags/killme/environments/production/kill', { reason: 'incident-42' }));
  await ok(a.post('/api/v1/flags', { key: 'canaried', kind: 'boolean' }), 201);
  await ok(
    a.put('/api/v1/flags/canaried/environments/staging', {
      enabled: true,
      offVariant: 'off',
      targets: [],
      rules: [],
      fallthrough: { variant: 'off' },
    }),
  );
  await ok(
    a.put('/api/v1/flags/canaried/environments/staging/canary', {
      control: 'off',
      canary: 'on',
      stages: [{ segment: 'internal' }, { percent: 10 }, { percent: 100 }],
      stageDurationSeconds: 3600,
    }),
    201,
  );
  await ok(a.post('/api/v1/flags', { key: 'old', kind: 'boolean', description: 'gone' }), 201);
  await ok(a.delete('/api/v1/flags/old'), 200);
}

/** Every environment's version (a write that changes nothing must not move them). */
export async function versions(a: Api): Promise<Record<string, number>> {
  const res = await a.get('/api/v1/environments');
  return Object.fromEntries((res.body.environments as { key: string; version: number }[]).map((e) => [e.key, e.version]));
}

/** How many audit entries there are (paged through). */
export async function auditCount(a: Api): Promise<number> {
  let n = 0;
  let cursor: string | null = null;
  do {
    const res: { body: { entries: unknown[]; nextCursor: string | null } } = await a.get(
      `/api/v1/audit?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    n += res.body.entries.length;
    cursor = res.body.nextCursor;
  } while (cursor);
  return n;
}
