import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_PATTERN, LIMITS, NAME_PATTERN } from '@aviary/sdk/core';
import { bodySchema, componentSchema, loadSpec, parametersSchema, type JsonObject } from '../../server/openapi/spec.js';
import { api, request, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer();
  expect((await api(srv).post('/api/v1/flags', { key: 'checkout', kind: 'boolean' })).status).toBe(201);
  expect((await api(srv).post('/api/v1/segments', { key: 'staff', included: ['u-1'] })).status).toBe(201);
});
afterAll(async () => {
  await srv?.close();
});

const STATE = '/api/v1/flags/checkout/environments/production';
const goodState = {
  enabled: true,
  offVariant: 'off',
  rules: [{ id: 'nl', conditions: [{ attribute: 'country', op: 'in', values: ['NL'] }], serve: { variant: 'on' } }],
  fallthrough: {
    rollout: {
      weights: [
        { variant: 'on', percent: 50 },
        { variant: 'off', percent: 50 },
      ],
    },
  },
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

describe('canary documents', () => {
  it('the schema refuses bad types, ranges and unknown members, each with its path, and starts nothing', async () => {
    const canary = '/api/v1/flags/checkout/environments/production/canary';
    const res = await api(srv).put(canary, {
      control: 'off',
      canary: 'on',
      stages: [{ percent: 1, segment: 'x' }, { percent: 120 }],
      guard: { confidence: 2, typo: 1 },
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const paths = (res.body.errors as { path: string }[]).map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['/guard/confidence', '/guard/typo']));
    expect(paths.some((p) => p.startsWith('/stages/0'))).toBe(true);
    expect(paths.some((p) => p.startsWith('/stages/1'))).toBe(true);
    expect((await api(srv).get(canary)).status).toBe(404);
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
      const res = await request(srv, method, path, {
        body: '{"key":"x","kind":"boolean","context":{"key":"u"}}',
        headers: { 'content-type': 'text/plain' },
        ...(token ? { token } : {}),
      });
      expect(res.status, `${method} ${path}`).toBe(415);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.body.detail).toContain('send application/json');
    }
    expect((await api(srv).get('/api/v1/audit?limit=1')).body.entries[0].id).toBe(audit.body.entries[0].id);
    expect((await api(srv).get(STATE)).headers.get('etag')).toBe(state.headers.get('etag'));
  });
});

/** A value that breaks a parameter's schema, or undefined for a parameter any string satisfies. */
function badValue(schema: JsonObject): string | undefined {
  if (Array.isArray(schema.anyOf)) return 'yesterday';
  if (Array.isArray(schema.enum)) return 'nope';
  if (schema.type === 'integer') return 'x';
  if (schema.type === 'boolean') return 'maybe';
  if (typeof schema.pattern === 'string') return 'Bad Key';
  if (typeof schema.maxLength === 'number') return 'a'.repeat(schema.maxLength + 1);
  return undefined;
}

// The admin routes; `GET /api/v1/environments/{env}/sdks` belongs to the stream plugin and still answers 404 for a
// key that cannot exist.
const ADMIN_OPERATIONS = loadSpec().operations.filter((o) => o.path.startsWith('/api/v1/') && o.operationId !== 'listConnectedSdks');
const GOOD_PATH_VALUES: Record<string, string> = { key: 'checkout', env: 'production', id: 'configured-admin' };
const urlOf = (path: string, values: Record<string, string> = {}) =>
  path.replace(/\{([^}]+)\}/g, (_, name: string) =>
    encodeURIComponent(values[name] ?? (path.startsWith('/api/v1/segments') && name === 'key' ? 'staff' : GOOD_PATH_VALUES[name]!)),
  );

describe('query strings and path parameters are validated with the spec parameters', () => {
  it('every constrained query parameter of an admin route refuses a bad value with a 400 naming it, and changes nothing', async () => {
    const checked: string[] = [];
    for (const op of ADMIN_OPERATIONS) {
      const query = parametersSchema(op.operationId, 'query');
      for (const [name, schema] of Object.entries((query?.properties ?? {}) as Record<string, JsonObject>)) {
        const bad = badValue(schema);
        if (bad === undefined) continue;
        const before = await api(srv).get(STATE);
        const audit = await api(srv).get('/api/v1/audit?limit=1');
        const res = await request(srv, op.method.toUpperCase(), `${urlOf(op.path)}?${name}=${encodeURIComponent(bad)}`);
        expect(res.status, `${op.operationId} ?${name}=${bad}: ${JSON.stringify(res.body)}`).toBe(400);
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(res.body.type).toBe('https://aviary.dev/problems/validation');
        expect(res.body.errors, op.operationId).toEqual([{ path: `/query/${name}`, message: expect.any(String) }]);
        expect(res.body.detail).toBe(`/query/${name}: ${res.body.errors[0].message}`);
        expect((await api(srv).get(STATE)).headers.get('etag')).toBe(before.headers.get('etag'));
        expect((await api(srv).get('/api/v1/audit?limit=1')).body.entries[0].id).toBe(audit.body.entries[0].id);
        checked.push(`${op.operationId} ${name}`);
      }
    }
    // The loop is real: it reached the routes' parameters of every kind.
    expect(checked).toEqual(
      expect.arrayContaining([
        'listFlags archived',
        'listFlags enabled',
        'listFlags killed',
        'listFlags tag',
        'getFlagMetrics from',
        'getFlagMetrics to',
        'getFlagMetrics step',
        'listAudit from',
        'listAudit to',
        'listAudit limit',
        'listAudit cursor',
        'killFlag waitMs',
        'reviveFlag waitMs',
      ]),
    );
  });

  it('says what is wrong with a query parameter in words', async () => {
    const cases: Array<[string, { path: string; message: string }]> = [
      ['/api/v1/flags?archived=maybe', { path: '/query/archived', message: 'must be one of "true", "false", "all"' }],
      ['/api/v1/flags?environment=production&killed=yes', { path: '/query/killed', message: 'must be boolean' }],
      ['/api/v1/audit?limit=501', { path: '/query/limit', message: 'must be <= 500' }],
      ['/api/v1/audit?limit=ten', { path: '/query/limit', message: 'must be integer' }],
      ['/api/v1/audit?from=last%20week', { path: '/query/from', message: 'must be an RFC 3339 date-time or epoch milliseconds' }],
      ['/api/v1/audit?to=2026-02-30T00:00:00Z', { path: '/query/to', message: 'must be an RFC 3339 date-time or epoch milliseconds' }],
    ];
    for (const [url, issue] of cases) {
      const res = await api(srv).get(url);
      expect(res.status, url).toBe(400);
      expect(res.body.errors, url).toEqual([issue]);
    }
  });

  it('coerces query strings to the declared types (and only query strings)', async () => {
    // `enabled` and `killed` are booleans in the spec: "true" and "false" select, and are not truthy strings.
    expect((await api(srv).put(STATE, goodState)).status).toBe(200);
    const on = await api(srv).get('/api/v1/flags?environment=production&enabled=true');
    const off = await api(srv).get('/api/v1/flags?environment=production&enabled=false');
    expect(on.body.flags.map((f: { key: string }) => f.key)).toEqual(['checkout']);
    expect(off.body.flags.map((f: { key: string }) => f.key)).toEqual([]);
    // Unknown query parameters are ignored (caches and proxies add their own); unknown body members are not.
    expect((await api(srv).get('/api/v1/flags?_=1700000000000')).status).toBe(200);
    // A number in a path is still a string: the key `123` is a valid key, not coerced and not refused.
    expect((await api(srv).get('/api/v1/flags/123')).status).toBe(404);
  });

  it('every patterned path parameter of an admin route refuses a key that cannot exist, naming it, and changes nothing', async () => {
    const checked: string[] = [];
    for (const op of ADMIN_OPERATIONS) {
      const params = parametersSchema(op.operationId, 'path');
      for (const [name, schema] of Object.entries((params?.properties ?? {}) as Record<string, JsonObject>)) {
        const bad = badValue(schema);
        if (bad === undefined) continue;
        const before = await api(srv).get(STATE);
        const res = await request(srv, op.method.toUpperCase(), urlOf(op.path, { [name]: bad }));
        expect(res.status, `${op.operationId} {${name}}=${bad}: ${JSON.stringify(res.body)}`).toBe(400);
        expect(res.body.errors, op.operationId).toEqual([{ path: `/params/${name}`, message: expect.stringContaining('must match pattern') }]);
        expect((await api(srv).get(STATE)).headers.get('etag')).toBe(before.headers.get('etag'));
        checked.push(`${op.operationId} ${name}`);
      }
    }
    expect(checked).toEqual(
      expect.arrayContaining([
        'getFlag key',
        'deleteFlag key',
        'putFlagState env',
        'killFlag key',
        'killAll env',
        'getSegment key',
        'deleteCanary env',
        'getFlagMetrics key',
      ]),
    );
    // Every route with a patterned path parameter was reached, and each of those operations declares the 400.
    for (const c of checked) {
      const op = ADMIN_OPERATIONS.find((o) => o.operationId === c.split(' ')[0])!;
      expect(Object.keys(op.operation.responses as JsonObject), op.operationId).toContain('400');
    }
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
    expect((componentSchema('Target').properties as Record<string, JsonObject>).keys!.maxItems).toBe(LIMITS.targetKeys);
    expect((componentSchema('Rule').properties as Record<string, JsonObject>).conditions!.maxItems).toBe(LIMITS.conditionsPerRule);
    expect((componentSchema('AttributeCondition').properties as Record<string, JsonObject>).values!.maxItems).toBe(LIMITS.valuesPerCondition);
    expect((bodySchema('createFlag').properties as Record<string, JsonObject>).variants!.maxItems).toBe(LIMITS.variants);
  });
});
