/**
 * The canary and the operator's own rules (issue 11, item 8): a hand-written rule or target that serves the canary
 * variant is traffic the canary did not choose at random, and a rollback cannot take it away. Starting a canary over
 * one is refused; one added during a canary pauses it (and resuming is refused while it is there); after a rollback,
 * the status says what still serves the canary variant and how much traffic it got.
 */
import { describeExposure } from '@aviary/api-client';
import type { VariantStats } from '@aviary/sdk/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { api, request, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
let clock = 0;
const statePath = '/api/v1/flags/checkout/environments/production';
const canaryPath = `${statePath}/canary`;
const minute = () => Math.floor(clock / 60_000) * 60_000;
const betaRule = { id: 'beta', conditions: [{ attribute: 'plan', op: 'in', values: ['beta'] }], serve: { variant: 'on' } };
const base = { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'off' } };

async function setup() {
  clock = Date.now();
  srv = await startServer({ now: () => clock, canary: { tickMs: 1e9 }, metrics: { maxDelayMs: 1 } });
  expect((await api(srv).post('/api/v1/flags', { key: 'checkout', kind: 'boolean' })).status).toBe(201);
  expect((await api(srv).put(statePath, base)).status).toBe(200);
}
afterEach(async () => {
  await srv.close();
});

let seq = 0;
async function report(stats: Array<Omit<VariantStats, 'flag' | 'minute'>>) {
  const res = await request(srv, 'POST', '/sdk/v1/metrics', {
    token: srv.sdkKeys.production,
    body: { sdkId: 'app', seq: ++seq, stats: stats.map((s) => ({ flag: 'checkout', minute: minute(), ...s })) },
  });
  expect(res.status).toBe(200);
}

const start = () =>
  api(srv).put(canaryPath, {
    control: 'off',
    canary: 'on',
    stages: [{ percent: 10 }, { percent: 50 }],
    stageDurationSeconds: 3600,
    guard: { minSamples: 100 },
  });

describe("the operator's own rules and a canary", () => {
  it('refuses to start a canary while rules, targets or offVariant already serve its variant', async () => {
    await setup();
    const a = api(srv);
    const rollout = {
      id: 'half-of-beta',
      conditions: [{ attribute: 'plan', op: 'in', values: ['beta'] }],
      serve: {
        rollout: {
          weights: [
            { variant: 'on', percent: 50 },
            { variant: 'off', percent: 50 },
          ],
        },
      },
    };
    expect((await a.put(statePath, { ...base, targets: [{ variant: 'on', keys: ['vip-1', 'vip-2'] }], rules: [betaRule, rollout] })).status).toBe(
      200,
    );
    const refused = await start();
    expect(refused.status).toBe(409);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(refused.body.errors).toEqual([
      { path: '/state/targets/0', message: 'targets 2 context key(s) to "on"' },
      { path: '/state/rules/0', message: 'rule "beta" serves "on"' },
      { path: '/state/rules/1', message: 'rule "half-of-beta" serves "on" in a rollout' },
    ]);
    expect(refused.body.detail).toMatch(/not a random sample/);
    expect((await a.get(canaryPath)).status).toBe(404);
    expect((await a.get(statePath)).body.fallthrough).toEqual({ variant: 'off' });
    // The kill switch must not serve the canary either.
    expect((await a.put(statePath, { ...base, offVariant: 'on' })).status).toBe(200);
    expect((await start()).body.errors).toEqual([
      { path: '/state/offVariant', message: 'offVariant is "on": the kill switch and contexts without the bucketBy attribute would get the canary' },
    ]);
    // Rules that serve the control are the operator's business.
    expect((await a.put(statePath, { ...base, rules: [{ ...betaRule, serve: { variant: 'off' } }] })).status).toBe(200);
    expect((await start()).status).toBe(201);
  });

  it('a rule added during a canary pauses it; after the automatic rollback the status reports the true exposure', async () => {
    await setup();
    const a = api(srv);
    expect((await start()).status).toBe(201);
    // Someone adds a hand-written rule serving the canary variant, keeping the canary's own fallthrough.
    const current = (await a.get(statePath)).body;
    expect((await a.put(statePath, { ...base, rules: [betaRule], fallthrough: current.fallthrough })).status).toBe(200);
    await srv.app.canaries.tick();
    const paused = (await a.get(canaryPath)).body;
    expect(paused.state).toBe('paused');
    expect(paused.exposure.outsideCanary).toEqual([{ path: '/rules/0', message: 'rule "beta" serves "on"' }]);
    const pause = (await a.get('/api/v1/audit?resourceType=canary&action=canary.pause')).body.entries[0];
    expect(pause.actor.name).toBe('canary-guard');
    expect(pause.reason).toMatch(/now serves "on" outside the canary \(\/rules\/0: rule "beta" serves "on"\)/);
    const resume = await a.post(`${canaryPath}/resume`);
    expect(resume.status).toBe(409);
    expect(resume.body.errors).toEqual([{ path: '/state/rules/0', message: 'rule "beta" serves "on"' }]);

    // A paused canary is still guarded: a regression rolls it back.
    await report([
      { variant: 'on', evaluations: 300, outcomes: 300, errors: 150 },
      { variant: 'off', evaluations: 300, outcomes: 300, errors: 3 },
    ]);
    await srv.app.canaries.tick();
    const rolledBack = (await a.get(canaryPath)).body;
    expect(rolledBack).toMatchObject({ state: 'rolled_back', percent: 0 });
    const entry = (await a.get('/api/v1/audit?resourceType=canary&action=canary.rollback')).body.entries[0];
    expect(entry.reason).toMatch(/^automatic rollback .*; note: "on" is still served outside the canary \(\/rules\/0: rule "beta" serves "on"\)$/);

    // The minutes after the rollback: 20% of evaluations still get "on" through the rule.
    clock += 60_000;
    await report([
      { variant: 'on', evaluations: 200, outcomes: 0, errors: 0, reasons: { RULE_MATCH: 200 } },
      { variant: 'off', evaluations: 800, outcomes: 0, errors: 0, reasons: { FALLTHROUGH: 800 } },
    ]);
    const after = (await a.get(canaryPath)).body;
    expect(after.percent).toBe(0);
    expect(after.exposure.outsideCanary).toEqual([{ path: '/rules/0', message: 'rule "beta" serves "on"' }]);
    expect(after.exposure.measured).toEqual({ since: new Date(minute()).toISOString(), evaluations: 1000, canaryEvaluations: 200, share: 0.2 });
    // What the CLI (`canary status`) and the console print: not "0% of traffic" alone.
    expect(describeExposure(after)).toBe(
      `also served by the flag's own /rules/0; 20.0% of evaluations got "on" since ${new Date(minute()).toISOString()} (200 of 1000)`,
    );
  });

  it('without rules of its own serving the canary, a rolled-back canary is measured at 0%', async () => {
    await setup();
    expect((await start()).status).toBe(201);
    expect((await api(srv).post(`${canaryPath}/rollback`, { reason: 'test' })).status).toBe(200);
    clock += 60_000;
    await report([{ variant: 'off', evaluations: 500, outcomes: 0, errors: 0 }]);
    const s = (await api(srv).get(canaryPath)).body;
    expect(s.exposure).toEqual({
      outsideCanary: [],
      measured: { since: new Date(minute()).toISOString(), evaluations: 500, canaryEvaluations: 0, share: 0 },
    });
  });
});
