/**
 * The shipped browser bundle (`sdk/scripts/bundle.mjs`: esbuild with private members mangled, then oxc's minifier)
 * is the client the size figure is about, so it is run here as built: it must answer every evaluation exactly as the
 * TypeScript sources do, and stream, apply a kill and report counts against the real server.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import * as source from '../../sdk/index.js';
import { lazyDfa } from '../../sdk/core/index.js';
import type { AttributeCondition, EnvironmentSnapshot, EvaluationContext, FlagConfig, Segment } from '../../sdk/index.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { booleanFlag, kill, nextChange } from '../stream/fixtures.js';

const SDK = join(import.meta.dirname, '../../sdk');
let bundled: typeof source;
let report: { gzipBytes: number; sources: { path: string }[] };
let srv: TestServer;

beforeAll(async () => {
  report = JSON.parse(execFileSync(process.execPath, [join(SDK, 'scripts/bundle.mjs'), '--json'], { encoding: 'utf8' }));
  bundled = (await import(/* @vite-ignore */ pathToFileURL(join(SDK, 'dist/aviary.browser.js')).href)) as typeof source;
  srv = await startServer();
});

afterAll(async () => {
  await srv?.close();
});

const conditions: AttributeCondition[] = [
  { attribute: 'plan', op: 'in', values: ['pro'] },
  { attribute: 'plan', op: 'in', values: ['pro', 'team', 3, true] },
  { attribute: 'email', op: 'startsWith', values: ['jo'] },
  { attribute: 'email', op: 'endsWith', values: ['@acme.com', '@acme.org'] },
  { attribute: 'email', op: 'contains', values: ['+'] },
  { attribute: 'email', op: 'matches', values: ['^[a-z0-9._%+-]+@acme\\.com$'] },
  { attribute: 'email', op: 'matches', values: ['\\bdoe\\b', '(x|y){2,3}z?$'] },
  { attribute: 'email', op: 'matches', values: ['[^\\d\\s]+\\.(com|org)', '^\\w{1,3}$'] },
  { attribute: 'seats', op: 'lt', values: [10] },
  { attribute: 'seats', op: 'gte', values: [10, 50] },
  { attribute: 'seats', op: 'gt', values: [100] },
  { attribute: 'seats', op: 'lte', values: [1] },
  { attribute: 'version', op: 'semverLt', values: ['2.0.0'] },
  { attribute: 'version', op: 'semverGt', values: ['1.2.3-beta.1'] },
  { attribute: 'version', op: 'semverEq', values: ['1.2.3'] },
  { attribute: 'signup', op: 'before', values: ['2024-01-01T00:00:00Z'] },
  { attribute: 'signup', op: 'after', values: ['2023-06-01T00:00:00Z'] },
  { attribute: 'beta', op: 'exists' },
];

const segments: Segment[] = [
  {
    key: 'staff',
    included: ['root'],
    excluded: ['mallory'],
    rules: [{ conditions: [{ attribute: 'email', op: 'endsWith', values: ['@acme.com'] }] }],
  },
];

function flag(key: string, rules: FlagConfig['state']['rules'], extra: Partial<FlagConfig['state']> = {}): FlagConfig {
  return {
    key,
    kind: 'string',
    variants: [
      { key: 'hit', value: 'hit' },
      { key: 'miss', value: 'miss' },
      { key: 'off', value: 'off' },
    ],
    state: { enabled: true, offVariant: 'off', targets: [], rules, fallthrough: { variant: 'miss' }, version: 1, ...extra },
  };
}

const flags: FlagConfig[] = [
  ...conditions.flatMap((c, i) => [
    flag(`op-${i}`, [{ id: 'r', conditions: [c], serve: { variant: 'hit' } }]),
    flag(`not-${i}`, [{ id: 'r', conditions: [{ ...c, negate: true }], serve: { variant: 'hit' } }]),
  ]),
  flag('segment', [{ id: 's', conditions: [{ segment: 'staff' }], serve: { variant: 'hit' } }]),
  flag('rollout', [], {
    targets: [{ variant: 'off', keys: ['vip'] }],
    fallthrough: {
      rollout: {
        bucketBy: 'key',
        weights: [
          { variant: 'hit', percent: 33.333 },
          { variant: 'miss', percent: 66.667 },
        ],
      },
    },
  }),
  flag('killed', [], { enabled: false }),
  flag('mixed', [
    { id: 'a', conditions: [conditions[0]!, { segment: 'staff', negate: true }], serve: { variant: 'hit' } },
    {
      id: 'b',
      conditions: [conditions[9]!],
      serve: {
        rollout: {
          bucketBy: 'org',
          salt: 's',
          weights: [
            { variant: 'hit', percent: 50 },
            { variant: 'miss', percent: 50 },
          ],
        },
      },
    },
  ]),
];

const snapshot: EnvironmentSnapshot = { environment: 'production', version: 1, flags, segments };

const contexts: EvaluationContext[] = [
  {},
  { key: 'root' },
  { key: 'vip', plan: 'pro', seats: 10 },
  { key: 'mallory', email: 'mallory@acme.com' },
  { key: 'u1', email: 'jo.doe+x@acme.com', plan: 'team', seats: 0, version: '1.2.3', signup: '2023-07-01T00:00:00Z', beta: true },
  { key: 'u2', email: 'jo@acme.com.evil', plan: 3, seats: 150, version: '2.0.0', signup: '2024-02-01T00:00:00Z', org: 'o1' },
  { key: 'u3', email: 'xyxz', plan: ['free', 'pro'], seats: 55, version: '1.2.3-beta.2', signup: 'not a date', org: 'o2' },
  { key: 'u4', email: 'ab', plan: true, seats: -1, version: 'nope', beta: [] as unknown as string },
  ...Array.from({ length: 40 }, (_, i) => ({
    key: `user-${i}`,
    email: `user${i}@example.${i % 2 ? 'com' : 'org'}`,
    seats: i * 3,
    org: `org-${i % 7}`,
    plan: 'pro',
  })),
];

// 11 KB since prerequisites (CONTRACT §12): linking, compile order and cycle marking, evaluation and their counts
// added 816 bytes gzipped (10,215 → 11,031).
it('loads the bundle bundle.mjs just built (the one whose size is reported), within the 11 KB gzipped budget', () => {
  expect(report.gzipBytes).toBeGreaterThan(1000);
  expect(report.gzipBytes).toBeLessThanOrEqual(11 * 1024);
  expect(bundled.SDK_VERSION).toBe(source.SDK_VERSION);
});

it('leaves the lazy DFA out: the browser client runs `matches` on the Pike VM unless its options pass an engine', () => {
  const paths = report.sources.map((s) => s.path);
  expect(paths).toContain('sdk/core/operators/pattern.ts');
  expect(paths.filter((p) => p.includes('pattern-dfa'))).toEqual([]);
});

it('leaves the OpenFeature provider and the OpenTelemetry hook out: they are entry points of their own', () => {
  const paths = report.sources.map((s) => s.path);
  expect(paths).toContain('sdk/client.ts');
  expect(paths.filter((p) => p.includes('otel') || p.includes('openfeature') || p.includes('opentelemetry'))).toEqual([]);
});

it('evaluates every operator, segment, target and rollout exactly as the sources do', async () => {
  const a = bundled.createClient({ baseUrl: 'http://127.0.0.1:1', sdkKey: 'k', offline: true, bootstrap: snapshot });
  const b = source.createClient({ baseUrl: 'http://127.0.0.1:1', sdkKey: 'k', offline: true, bootstrap: snapshot });
  // The bundle handed the lazy DFA through its options (the sources on Node use it by default).
  const withDfa = bundled.createClient({ baseUrl: 'http://127.0.0.1:1', sdkKey: 'k', offline: true, bootstrap: snapshot, patternEngine: lazyDfa });
  let hits = 0;
  for (const f of [...flags.map((f) => f.key), 'absent']) {
    for (const ctx of contexts) {
      const got = a.variationDetail(f, ctx, 'default');
      expect(got, `${f} ${JSON.stringify(ctx)}`).toEqual(b.variationDetail(f, ctx, 'default'));
      expect(withDfa.variationDetail(f, ctx, 'default'), `${f} ${JSON.stringify(ctx)} (DFA)`).toEqual(got);
      if (got.value === 'hit') hits++;
    }
  }
  // Both answers are exercised, not just the fallthrough.
  expect(hits).toBeGreaterThan(100);
  expect(a.allFlags(contexts[4]!)).toEqual(b.allFlags(contexts[4]!));
  expect(a.variationDetail('op-0', { plan: 'pro' }, 7)).toEqual(b.variationDetail('op-0', { plan: 'pro' }, 7));
  await Promise.all([a.close(), b.close(), withDfa.close()]);
});

it('streams from the real server, applies a kill and reports its counts', async () => {
  await booleanFlag(srv, 'bundle-flag');
  const client = bundled.createClient({
    baseUrl: srv.url,
    sdkKey: srv.sdkKeys.production,
    WebSocket: WebSocket as never,
    webSocketAuth: 'protocol',
    flushIntervalMs: 0,
  });
  try {
    await client.ready(5_000);
    expect(client.variationDetail('bundle-flag', { key: 'u' }, false)).toMatchObject({ value: true, reason: { kind: 'FALLTHROUGH' } });
    const changed = nextChange(client);
    await kill(srv, 'bundle-flag');
    expect(await changed).toEqual(['bundle-flag']);
    expect(client.variationDetail('bundle-flag', { key: 'u' }, true)).toMatchObject({ value: false, reason: { kind: 'OFF' } });
    expect(await client.flush()).toBe(true);
    expect(client.status()).toMatchObject({ ready: true, connected: true, reports: { sent: 1, pending: 0 } });
  } finally {
    await client.close();
  }
});
