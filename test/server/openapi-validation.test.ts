import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_PATTERN, LIMITS, NAME_PATTERN } from '@aviary/sdk/core';
import { bodySchema, componentSchema, type JsonObject } from '../../server/openapi/spec.js';
import { api, request, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer();
  expect((await api(srv).post('/api/v1/flags', { key: 'checkout', kind: 'boolean' })).status).toBe(201);
});
afterAll(async () => {
  await srv?.close();
});

const STATE = '/api/v1/flags/checkout/environments/production';
const goodState = {
  enabled: true,
  offVariant: 'off',
  rules: [{ id: 'nl', conditions: [{ attribute: 'country', op: 'in', values: ['NL'] }], serve: { variant: 'on' } }],
  fallthrough: { rollout: { weights: [{ variant: 'on', percent: 50 }, { variant: 'off', percent: 50 }] } },
};

/** Sends a bad body and checks the problem document names `path`, and that the stored state did not change. */
async function rejected(method: 'post' | 'put' | 'patch', path: string, body: unknown, expected: string[]): Promise<void> {
  const before = await api(srv).get(STATE);
  const audit = await api(srv).get('/api/v1/audit?limit=1');
  const res = await api(srv)[method](path, body);
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.body.type).toBe('https://aviary.dev/problems/validation');
  const paths = (res.body.errors as { path: string; message: string }[]).map((e) => e.path);
  for (const p of expected) expect(paths, JSON.stringify(res.body.errors)).toContain(p);
  expect(res.body.detail).toContain(res.body.errors[0].path);
  const after = await api(srv).get(STATE);
  expect(after.headers.get('etag')).toBe(before.headers.get('etag'));
  expect((await api(srv).get('/api/v1/audit?limit=1')).body.entries[0].id).toBe(audit.body.entries[0].id);
}

describe('request bodies are validated with the spec schemas', () => {
  it('accepts the good state (the bad ones below differ from it in one place)', async () => {
    expect((await api(srv).put(STATE, goodState)).status).toBe(200);
  });

  it('names the field of a bad operator deep in a rule, not every alternative of the condition', async () => {
    const bad = structuredClone(goodState);
    (bad.rules[0]!.conditions[0] as { op: string }).op = 'startswith';
    await rejected('put', STATE, bad, ['/rules/0/conditions/0/op']);
    const res = await api(srv).put(STATE, bad);
    expect(res.body.errors).toHaveLength(1);
  });

  it('never coerces: a percent sent as a string is refused', async () => {
    const bad = structuredClone(goodState);
    (bad.fallthrough.rollout.weights[0] as { percent: unknown }).percent = '50';
    await rejected('put', STATE, bad, ['/fallthrough/rollout/weights/0/percent']);
  });

  it('refuses unknown properties instead of dropping them', async () => {
    await rejected('put', STATE, { ...goodState, fallthrougth: { variant: 'on' } }, ['/fallthrougth']);
    await rejected('patch', '/api/v1/flags/checkout', { colour: 'red' }, ['/colour']);
  });

  it('names missing required properties', async () => {
    await rejected('post', '/api/v1/environments', { name: 'QA' }, ['/key']);
    await rejected('put', STATE, { enabled: true, offVariant: 'off' }, ['/fallthrough']);
  });

  it('reports a serve that mixes a variant and a rollout against the form it started as', async () => {
    const bad = { ...goodState, fallthrough: { variant: 'on', rollout: goodState.fallthrough.rollout } };
    await rejected('put', STATE, bad, ['/fallthrough/rollout']);
  });

  it('checks optional bodies when they are sent, and accepts none', async () => {
    await rejected('post', `${STATE}/kill`, { reason: 5 }, ['/reason']);
    const res = await api(srv).post(`${STATE}/kill`);
    expect(res.status).toBe(200);
    expect(res.body.enabled).toBe(false);
  });

  it('lists every problem of a body, each with its own path', async () => {
    await rejected('post', '/api/v1/flags', { key: 'Bad Key', kind: 'bool', tags: 'web' }, ['/key', '/kind', '/tags']);
  });
});

describe('media types', () => {
  it('a JSON body sent as text/plain is refused with 415 on every API, and changes nothing', async () => {
    const audit = await api(srv).get('/api/v1/audit?limit=1');
    const state = await api(srv).get(STATE);
    const cases: [string, string, string | undefined][] = [
      ['POST', '/api/v1/flags', undefined],
      ['PUT', '/api/v1/segments/beta', undefined],
      ['PUT', STATE, undefined],
      ['POST', `${STATE}/kill`, undefined],
      ['POST', '/sdk/v1/evaluate', srv.sdkKeys.production],
      ['POST', '/sdk/v1/metrics', srv.sdkKeys.production],
      ['POST', '/ofrep/v1/evaluate/flags/checkout', srv.sdkKeys.production],
    ];
    for (const [method, path, token] of cases) {
      const res = await request(srv, method, path, { body: '{"key":"x","kind":"boolean","context":{"key":"u"}}', headers: { 'content-type': 'text/plain' }, ...(token ? { token } : {}) });
      expect(res.status, `${method} ${path}`).toBe(415);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.body.detail).toContain('send application/json');
    }
    expect((await api(srv).get('/api/v1/audit?limit=1')).body.entries[0].id).toBe(audit.body.entries[0].id);
    expect((await api(srv).get(STATE)).headers.get('etag')).toBe(state.headers.get('etag'));
  });
});

describe('the spec agrees with the evaluation core on what is valid', () => {
  // The schemas run first: one stricter than the core would refuse documents the core (and SDKs) accept.
  it('uses the core patterns for flag, segment and variant keys and rule ids', () => {
    expect(componentSchema('FlagKey').pattern).toBe(KEY_PATTERN.source);
    expect(componentSchema('SegmentKey').pattern).toBe(KEY_PATTERN.source);
    expect(componentSchema('VariantKey').pattern).toBe(NAME_PATTERN.source);
    expect((componentSchema('Rule').properties as Record<string, JsonObject>).id!.pattern).toBe(NAME_PATTERN.source);
    expect((componentSchema('SegmentRule').properties as Record<string, JsonObject>).id!.pattern).toBe(NAME_PATTERN.source);
  });

  it('uses the core limits for rules, conditions, values, targets and variants', () => {
    const state = bodySchema('putFlagState').properties as Record<string, JsonObject>;
    expect(state.rules!.maxItems).toBe(LIMITS.rules);
    expect(((componentSchema('Target').properties as Record<string, JsonObject>).keys!).maxItems).toBe(LIMITS.targetKeys);
    expect(((componentSchema('Rule').properties as Record<string, JsonObject>).conditions!).maxItems).toBe(LIMITS.conditionsPerRule);
    expect(((componentSchema('AttributeCondition').properties as Record<string, JsonObject>).values!).maxItems).toBe(LIMITS.valuesPerCondition);
    expect(((bodySchema('createFlag').properties as Record<string, JsonObject>).variants!).maxItems).toBe(LIMITS.variants);
  });
});
