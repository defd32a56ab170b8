/**
 * `npm run bench:eval`: evaluations per second through the SDK's evaluation path (`sdk/evaluator.ts`, per-variant
 * counting on) against `@openfeature/flagd-core` (no counting) and `unleash-client` (local evaluation from a
 * bootstrap, its metrics counting on, no network: refresh and metrics sending are off, the URL is loopback).
 *
 *   (a) boolean flag: one `in` rule on `plan`, then a 10% fallthrough rollout;
 *   (b) 20 rules (in / endsWith / semverGt / lt), the 20th a 500-key segment, then the 10% rollout;
 *   (c) flag (a) with non-ASCII context keys;
 *   (d) a flag whose one prerequisite is flag (a) (served "on" where (a) serves "on"): aviary evaluates and counts
 *       both flags; Unleash uses its own flag dependencies; flagd-core has no prerequisites, so it gets flag (a)'s
 *       targeting inlined (the same answers, one flag's work).
 *
 * Each round runs every contender for a fixed time, in a rotating order; the table shows medians over rounds.
 * Then allocations: heap growth per evaluation over batches too small to trigger a scavenge (GC forced between
 * batches), and scavenges per million evaluations.
 * Options: --rounds=N (default 7), --ms=N per contender per round (default 400), --quick (3 × 150 ms).
 * Takes about a minute.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { FlagdCore } from '@openfeature/flagd-core';
import { InMemStorageProvider, Unleash } from 'unleash-client';
import { lazyDfa, type EnvironmentSnapshot, type FlagConfig, type Rule } from '../sdk/core/index.js';
import { Evaluator } from '../sdk/evaluator.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const opt = (name: string, dflt: number) => Number(args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt);
const ROUNDS = opt('rounds', quick ? 3 : 7);
const ROUND_MS = opt('ms', quick ? 150 : 400);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

// ------------------------------------------------------------------------------------------------ the flags
const bool = [
  { key: 'on', value: true },
  { key: 'off', value: false },
];
const tenPercent = {
  rollout: {
    bucketBy: 'key',
    weights: [
      { variant: 'on', percent: 10 },
      { variant: 'off', percent: 90 },
    ],
  },
};
const flagA: FlagConfig = {
  key: 'flag-a',
  kind: 'boolean',
  variants: bool,
  state: {
    enabled: true,
    offVariant: 'off',
    targets: [],
    version: 1,
    rules: [{ id: 'paid', conditions: [{ attribute: 'plan', op: 'in', values: ['team', 'enterprise'] }], serve: { variant: 'on' } }],
    fallthrough: tenPercent,
  },
};
const segmentKeys = Array.from({ length: 500 }, (_, i) => `user-${i * 7}`);

type Cond = { kind: 'in' | 'endsWith' | 'semverGt' | 'lt'; attr: string; values: (string | number)[] };
const bConditions: Cond[] = Array.from({ length: 19 }, (_, i): Cond => {
  switch (i % 4) {
    case 0:
      return { kind: 'in', attr: 'plan', values: [`plan-${i}a`, `plan-${i}b`] };
    case 1:
      return { kind: 'endsWith', attr: 'email', values: [`@corp-${i}.com`] };
    case 2:
      return { kind: 'semverGt', attr: 'appVersion', values: [`9.${i}.0`] };
    default:
      return { kind: 'lt', attr: 'age', values: [i - 100] };
  }
});
const bRules: Rule[] = [
  ...bConditions.map((c, i) => ({ id: `r${i}`, conditions: [{ attribute: c.attr, op: c.kind, values: c.values }], serve: { variant: 'on' } })),
  { id: 'cohort', conditions: [{ segment: 'cohort' }], serve: { variant: 'on' } },
];
const flagB: FlagConfig = { ...flagA, key: 'flag-b', state: { ...flagA.state, rules: bRules } };
const flagD: FlagConfig = {
  ...flagA,
  key: 'flag-d',
  state: { ...flagA.state, prerequisites: [{ flag: 'flag-a', variants: ['on'] }], rules: [], fallthrough: { variant: 'on' } },
};
const snapshot: EnvironmentSnapshot = {
  environment: 'bench',
  version: 1,
  flags: [flagA, flagB, flagD],
  segments: [{ key: 'cohort', included: segmentKeys, excluded: [], rules: [] }],
};

// flagd: JSONLogic targeting; `fractional` buckets by flag key + targetingKey.
const flagdFraction = {
  fractional: [
    ['on', 10],
    ['off', 90],
  ],
};
const flagdCondition = (c: Cond) => {
  const v = { var: c.attr };
  switch (c.kind) {
    case 'in':
      return { in: [v, c.values] };
    case 'endsWith':
      return { ends_with: [v, c.values[0]] };
    case 'semverGt':
      return { sem_ver: [v, '>', c.values[0]] };
    case 'lt':
      return { '<': [v, c.values[0]] };
  }
};
const flagdConfig = {
  flags: {
    'flag-a': {
      state: 'ENABLED',
      variants: { on: true, off: false },
      defaultVariant: 'off',
      targeting: { if: [{ in: [{ var: 'plan' }, ['team', 'enterprise']] }, 'on', flagdFraction] },
    },
    'flag-d': {
      state: 'ENABLED',
      variants: { on: true, off: false },
      defaultVariant: 'off',
      targeting: { if: [{ in: [{ var: 'plan' }, ['team', 'enterprise']] }, 'on', flagdFraction] },
    },
    'flag-b': {
      state: 'ENABLED',
      variants: { on: true, off: false },
      defaultVariant: 'off',
      targeting: {
        if: [...bConditions.flatMap((c) => [flagdCondition(c), 'on']), { in: [{ var: 'targetingKey' }, segmentKeys] }, 'on', flagdFraction],
      },
    },
  },
};

// Unleash: strategies are tried in order; constraints select, flexibleRollout places by userId.
const rollout = (percent: number, groupId: string, constraints: unknown[] = []) => ({
  name: 'flexibleRollout',
  constraints,
  parameters: { rollout: String(percent), stickiness: 'userId', groupId },
});
const unleashOperator = { in: 'IN', endsWith: 'STR_ENDS_WITH', semverGt: 'SEMVER_GT', lt: 'NUM_LT' } as const;
const unleashConstraint = (c: Cond) =>
  c.kind === 'semverGt' || c.kind === 'lt'
    ? { contextName: c.attr, operator: unleashOperator[c.kind], value: String(c.values[0]) }
    : { contextName: c.attr, operator: unleashOperator[c.kind], values: c.values.map(String) };
const unleashFeatures = [
  {
    name: 'flag-a',
    enabled: true,
    strategies: [rollout(100, 'flag-a', [{ contextName: 'plan', operator: 'IN', values: ['team', 'enterprise'] }]), rollout(10, 'flag-a')],
  },
  { name: 'flag-d', enabled: true, dependencies: [{ feature: 'flag-a', enabled: true }], strategies: [rollout(100, 'flag-d')] },
  {
    name: 'flag-b',
    enabled: true,
    strategies: [
      ...bConditions.map((c) => rollout(100, 'flag-b', [unleashConstraint(c)])),
      { ...rollout(100, 'flag-b'), segments: [1] },
      rollout(10, 'flag-b'),
    ],
  },
];
const unleashSegments = [{ id: 1, name: 'cohort', constraints: [{ contextName: 'userId', operator: 'IN', values: segmentKeys }] }];

// ------------------------------------------------------------------------------------------------ contexts
const N = 4096;
type Ctx = {
  key: string;
  plan: string;
  email: string;
  appVersion: string;
  age: number;
};
function contexts(keyOf: (i: number) => string): Ctx[] {
  return Array.from({ length: N }, (_, i) => ({
    key: keyOf(i),
    plan: i % 5 === 0 ? 'team' : 'free',
    email: `person${i}@example.com`,
    appVersion: '4.2.0',
    age: 20 + (i % 50),
  }));
}
const asciiContexts = contexts((i) => `user-${i}`);
const nonAsciiContexts = contexts((i) => ['Zürich', 'Δοκιμή', '用户', 'Ñandú', '🦜'][i % 5] + `-${i}`);

// ------------------------------------------------------------------------------------------------ contenders
type Evaluate = (i: number) => boolean;
interface Scenario {
  name: string;
  flag: string;
  ctx: Ctx[];
}
const scenarios: Scenario[] = [
  { name: '(a) in rule + 10% rollout', flag: 'flag-a', ctx: asciiContexts },
  { name: '(b) 20 rules + 500-key segment', flag: 'flag-b', ctx: asciiContexts },
  { name: '(c) flag (a), non-ASCII keys', flag: 'flag-a', ctx: nonAsciiContexts },
  { name: '(d) one-level prerequisite on (a)', flag: 'flag-d', ctx: asciiContexts },
];

async function contenders(s: Scenario): Promise<{ name: string; run: Evaluate; close?: () => void }[]> {
  // As a client on Node compiles (its default pattern engine; these flags have no `matches`, so it changes nothing here).
  const evaluator = new Evaluator(snapshot, { patternEngine: lazyDfa });
  const flagd = new FlagdCore();
  flagd.setConfigurations(JSON.stringify(flagdConfig));
  const unleash = new Unleash({
    appName: 'aviary-bench',
    url: 'http://127.0.0.1:1/api/',
    refreshInterval: 0,
    metricsInterval: 0,
    disableMetrics: false,
    storageProvider: new InMemStorageProvider(),
    bootstrap: { data: unleashFeatures as never, segments: unleashSegments as never },
    skipInstanceCountWarning: true,
  });
  unleash.on('error', () => {});
  unleash.on('warn', () => {});
  await new Promise((resolve) => unleash.once('ready', resolve));

  const aviaryCtx = s.ctx;
  const flagdCtx = s.ctx.map((c) => ({ targetingKey: c.key, plan: c.plan, email: c.email, appVersion: c.appVersion, age: c.age }));
  const unleashCtx = s.ctx.map((c) => ({
    userId: c.key,
    properties: { plan: c.plan, email: c.email, appVersion: c.appVersion, age: String(c.age) },
  }));
  const flag = s.flag;
  return [
    { name: 'aviary (counting on)', run: (i) => evaluator.evaluate(flag, aviaryCtx[i & (N - 1)]!, false).value },
    { name: 'flagd-core', run: (i) => flagd.resolveBooleanEvaluation(flag, false, flagdCtx[i & (N - 1)]!).value },
    { name: 'unleash-client (metrics on)', run: (i) => unleash.isEnabled(flag, unleashCtx[i & (N - 1)]!), close: () => unleash.destroy() },
  ];
}

/** Evaluations per second over about `ms` milliseconds. */
function measure(run: Evaluate, ms: number): number {
  let n = 0;
  let on = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let k = 0; k < 2048; k++) if (run(n++)) on++;
    now = performance.now();
  }
  sink += on;
  return (n / (now - start)) * 1000;
}
let sink = 0;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Heap bytes per evaluation over batches small enough for the young generation, GC forced before each. */
function bytesPerEvaluation(run: Evaluate): number {
  const batch = 5_000;
  const samples: number[] = [];
  for (let r = 0; r < 9; r++) {
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < batch; i++) if (run(i)) sink++;
    const after = process.memoryUsage().heapUsed;
    if (after >= before) samples.push((after - before) / batch);
  }
  return samples.length === 0 ? NaN : median(samples);
}

let scavenges = 0;
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if ((e as { detail?: { kind?: number } }).detail?.kind === 1) scavenges++;
});
observer.observe({ entryTypes: ['gc'] });

const settle = () => new Promise((resolve) => setTimeout(resolve, 50)); // gc entries arrive asynchronously

/** Scavenges per million evaluations, measured over about one second's worth (at least 50,000 evaluations). */
async function scavengesPerMillion(run: Evaluate, ratePerSecond: number): Promise<number> {
  const count = Math.max(50_000, Math.min(1_000_000, Math.round(ratePerSecond)));
  gc();
  await settle();
  const before = scavenges;
  for (let i = 0; i < count; i++) if (run(i)) sink++;
  await settle();
  return ((scavenges - before) * 1_000_000) / count;
}

const fmt = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M/s` : `${(x / 1e3).toFixed(0)} k/s`);

console.log(`# bench:eval — node ${process.version}, ${ROUNDS} rounds × ${ROUND_MS} ms per contender, medians\n`);
const rows: string[] = [];
const allocRows: string[] = [];
const shares: string[] = [];
for (const s of scenarios) {
  const cs = await contenders(s);
  // The contenders must serve the same thing wherever a rule decides (their rollout hashes differ, so only the
  // share of contexts placed in the 10% may differ).
  const ruleDecides = (c: Ctx) => (s.flag === 'flag-b' ? segmentKeys.includes(c.key) : c.plan === 'team');
  const onShare = cs.map((c) => {
    let on = 0;
    s.ctx.forEach((ctx, i) => {
      const v = c.run(i);
      if (v) on++;
      if (ruleDecides(ctx) && !v) throw new Error(`${c.name} does not serve "on" to ${ctx.key} on ${s.flag}`);
    });
    return on / N;
  });
  shares.push(`${s.name}: ${cs.map((c, i) => `${c.name} ${(onShare[i]! * 100).toFixed(1)}%`).join(', ')}`);
  for (const c of cs) for (let i = 0; i < 20_000; i++) c.run(i); // warm up
  const rates = cs.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < cs.length; k++) {
      const idx = (k + r) % cs.length;
      rates[idx]!.push(measure(cs[idx]!.run, ROUND_MS));
    }
  }
  const med = rates.map(median);
  const aviary = med[0]!;
  cs.forEach((c, i) => {
    const spread = `${fmt(Math.min(...rates[i]!))}–${fmt(Math.max(...rates[i]!))}`;
    rows.push(`| ${s.name} | ${c.name} | ${fmt(med[i]!)} | ${spread} | ${i === 0 ? '1.00×' : `${(aviary / med[i]!).toFixed(2)}×`} |`);
  });
  for (const [i, c] of cs.entries()) {
    const bytes = bytesPerEvaluation(c.run);
    const sc = await scavengesPerMillion(c.run, med[i]!);
    allocRows.push(`| ${s.name} | ${c.name} | ${bytes.toFixed(1)} | ${sc.toFixed(0)} |`);
  }
  for (const c of cs) c.close?.();
}
console.log('| flag | contender | evaluations/s (median) | range over rounds | aviary ÷ contender |');
console.log('|---|---|---:|---|---:|');
for (const r of rows) console.log(r);
console.log('\n| flag | contender | heap bytes / evaluation (median) | scavenges / 1M evaluations |');
console.log('|---|---|---:|---:|');
for (const r of allocRows) console.log(r);
console.log('\nShare of contexts served "on" (rule matches agree; each rollout hash places its own ~10%):');
for (const line of shares) console.log(`- ${line}`);
observer.disconnect();
if (sink === -1) console.log('');
