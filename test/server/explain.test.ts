/**
 * `POST /api/v1/flags/{key}/environments/{env}/explain` on the real server, against a real SDK streaming the same
 * environment: the explained result is what the SDK serves, with the whole decision around it (kill state,
 * prerequisites, targets, each rule's conditions, the bucket against the rollout's ranges). Bad input changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { bucket } from '@aviary/sdk/core';
import { api, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
let sdk: AviaryClient;
const a = () => api(srv);
const EXPLAIN = (flag: string) => `/api/v1/flags/${flag}/environments/production/explain`;

beforeAll(async () => {
  srv = await startServer();
  expect((await a().post('/api/v1/segments', { key: 'beta-testers', included: ['vip-1'], excluded: [], rules: [] })).status).toBe(201);
  for (const key of ['new-checkout', 'payments-v2']) expect((await a().post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
  expect(
    (
      await a().put('/api/v1/flags/payments-v2/environments/production', {
        enabled: true,
        offVariant: 'off',
        targets: [],
        rules: [],
        fallthrough: { variant: 'on' },
      })
    ).status,
  ).toBe(200);
  const put = await a().put('/api/v1/flags/new-checkout/environments/production', {
    enabled: true,
    offVariant: 'off',
    prerequisites: [{ flag: 'payments-v2', variants: ['on'] }],
    targets: [{ variant: 'off', keys: ['blocked-user'] }],
    rules: [
      { id: 'beta', conditions: [{ segment: 'beta-testers' }], serve: { variant: 'on' } },
      {
        id: 'pro-eu',
        conditions: [
          { attribute: 'plan', op: 'in', values: ['pro'] },
          { attribute: 'country', op: 'in', values: ['NL', 'DE'] },
        ],
        serve: { variant: 'on' },
      },
      {
        id: 'not-staff',
        conditions: [{ attribute: 'email', op: 'endsWith', values: ['@acme.com'], negate: true }],
        serve: {
          rollout: {
            weights: [
              { variant: 'on', percent: 25 },
              { variant: 'off', percent: 75 },
            ],
          },
        },
      },
    ],
    fallthrough: { variant: 'off' },
  });
  expect(put.status, JSON.stringify(put.body)).toBe(200);
  sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
  await sdk.ready();
}, 30_000);

afterAll(async () => {
  await sdk?.close();
  await srv?.close();
});

describe('explain', () => {
  it('names the rule, each condition with the actual value, and what the SDK serves', async () => {
    const context = { key: 'u-7', plan: 'pro', country: 'NL', email: 'jo@acme.com' };
    const res = await a().post(EXPLAIN('new-checkout'), { context });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const x = res.body;
    expect(x.result).toEqual(sdk.variationDetail('new-checkout', context, false));
    expect(x).toMatchObject({ environment: 'production', flag: 'new-checkout', enabled: true, killed: null, decidedBy: 'rule' });
    expect(x.prerequisites).toEqual([
      { flag: 'payments-v2', variants: ['on'], missing: false, off: false, holds: true, served: expect.objectContaining({ variant: 'on' }) },
    ]);
    expect(x.rules.map((r: { id: string; matches: boolean; decided: boolean }) => [r.id, r.matches, r.decided])).toEqual([
      ['beta', false, false],
      ['pro-eu', true, true],
      ['not-staff', false, false],
    ]);
    expect(x.rules[1].conditions).toEqual([
      { condition: { attribute: 'plan', op: 'in', values: ['pro'] }, actual: 'pro', holds: true },
      { condition: { attribute: 'country', op: 'in', values: ['NL', 'DE'] }, actual: 'NL', holds: true },
    ]);
    expect(x.rules[2].conditions[0]).toMatchObject({ actual: 'jo@acme.com', holds: false });
  });

  it('shows the bucket against the rollout ranges for a rollout rule', async () => {
    const context = { key: 'u-42', email: 'someone@example.com' };
    const x = (await a().post(EXPLAIN('new-checkout'), { context })).body;
    const b = bucket('new-checkout', 'u-42');
    expect(x.decidedBy).toBe('rule');
    expect(x.rules[2]).toMatchObject({ id: 'not-staff', matches: true, decided: true });
    expect(x.rules[2].serve.rollout).toEqual({
      bucketBy: 'key',
      salt: 'new-checkout',
      value: 'u-42',
      bucket: b,
      ranges: [
        { variant: 'on', fromBucket: 0, toBucket: 25_000, percent: 25 },
        { variant: 'off', fromBucket: 25_000, toBucket: 100_000, percent: 75 },
      ],
      variant: b < 25_000 ? 'on' : 'off',
    });
    expect(x.result).toEqual(sdk.variationDetail('new-checkout', context, false));
    expect(x.result.reason.bucket).toBe(b);
  });

  it('targets come before rules; a failed prerequisite and a kill come before both', async () => {
    expect((await a().post(EXPLAIN('new-checkout'), { context: { key: 'blocked-user', plan: 'pro', country: 'NL' } })).body).toMatchObject({
      decidedBy: 'target',
      target: { key: 'blocked-user', variant: 'off' },
      result: { variant: 'off', reason: { kind: 'TARGET_MATCH' } },
    });
    expect((await a().post('/api/v1/flags/payments-v2/environments/production/kill', { reason: 'INC-7' })).status).toBe(200);
    await expect.poll(() => sdk.variationDetail('new-checkout', { key: 'vip-1' }, false).reason.kind).toBe('PREREQUISITE_FAILED');
    const pre = (await a().post(EXPLAIN('new-checkout'), { context: { key: 'vip-1' } })).body;
    expect(pre).toMatchObject({ decidedBy: 'prerequisite', prerequisites: [{ flag: 'payments-v2', off: true, holds: false }] });
    expect(pre.result).toEqual(sdk.variationDetail('new-checkout', { key: 'vip-1' }, false));
    // The rules are still shown: the beta segment would have matched.
    expect(pre.rules[0]).toMatchObject({ id: 'beta', matches: true, decided: false });

    expect((await a().post('/api/v1/flags/new-checkout/environments/production/kill', { reason: 'INC-8: double charges' })).status).toBe(200);
    const killed = (await a().post(EXPLAIN('new-checkout'), { context: { key: 'vip-1' } })).body;
    expect(killed).toMatchObject({
      decidedBy: 'off',
      enabled: false,
      killed: { reason: 'INC-8: double charges' },
      result: { variant: 'off', reason: { kind: 'OFF' } },
    });
    expect(killed.killed.at).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('refuses bad input with the field, and unknown flags and environments with 404', async () => {
    const bad = await a().post(EXPLAIN('new-checkout'), { context: { key: { nested: true } } });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].path).toMatch(/^\/context\/key/);
    expect((await a().post(EXPLAIN('new-checkout'), {})).status).toBe(400);
    expect((await a().post(EXPLAIN('no-such-flag'), { context: {} })).status).toBe(404);
    expect((await a().post('/api/v1/flags/new-checkout/environments/nowhere/explain', { context: {} })).status).toBe(404);
    expect(
      (await fetch(srv.url + EXPLAIN('new-checkout'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"context":{}}' }))
        .status,
    ).toBe(401);
  });
});
