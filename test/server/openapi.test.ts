import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createClient } from '@aviary/sdk';
import { loadSpec, responseSchema, SPEC_PATH, type JsonObject } from '../../server/openapi/spec.js';
import { api, request, startServer, type ApiResponse, type TestServer } from '../helpers/server.js';
import { startReceiver } from '../webhooks/receiver.js';
import { ensureSdkBundle } from '../helpers/sdk-bundle.js';
import { API_TIME } from '../helpers/time.js';

const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv2020) => Ajv2020;
const spec = loadSpec();
const ajv = addFormats(new Ajv2020({ allErrors: true, strict: false }));
const validators = new Map<string, ValidateFunction | null>();

/** Routes outside the API that the spec does not describe: the console's static files. */
const API_PREFIXES = ['/api/', '/sdk/', '/ofrep/', '/hooks/v1'];
const OPS_ROUTES = ['/healthz', '/readyz', '/metrics', '/openapi.json'];
const isApiRoute = (url: string) => API_PREFIXES.some((p) => url.startsWith(p)) || OPS_ROUTES.includes(url);

/** Operations whose real responses this file has checked, with their statuses. */
const exercised = new Map<string, Set<number>>();

/** The names of the time members of the spec's answers: every property whose schema (or a branch of it) is a date-time. */
function timeMembers(): Set<string> {
  const names = new Set<string>();
  const isTime = (schema: unknown): boolean => {
    const s = schema as JsonObject | null;
    if (!s || typeof s !== 'object') return false;
    if (s.format === 'date-time') return true;
    return ['anyOf', 'oneOf', 'allOf'].some((k) => Array.isArray(s[k]) && (s[k] as unknown[]).some(isTime));
  };
  const walk = (schema: unknown): void => {
    if (Array.isArray(schema)) return schema.forEach(walk);
    if (!schema || typeof schema !== 'object') return;
    const s = schema as JsonObject;
    if (s.properties && typeof s.properties === 'object') {
      for (const [name, prop] of Object.entries(s.properties as JsonObject)) if (isTime(prop)) names.add(name);
    }
    for (const v of Object.values(s)) walk(v);
  };
  for (const op of spec.operations) {
    for (const status of Object.keys((op.operation.responses ?? {}) as JsonObject)) walk(responseSchema(op.operationId, status));
  }
  return names;
}
const TIME_MEMBERS = timeMembers();
/** Time members seen with a value (not null) in a real answer, all of them RFC 3339. */
const timesSeen = new Set<string>();

/**
 * Every time in an answer is RFC 3339 in UTC with milliseconds: the members the spec declares as date-times, and any
 * other member named like a time (`at`, `…At`), wherever it is (audit entries' before/after included).
 */
function checkTimes(operationId: string, value: unknown, path = ''): void {
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) checkTimes(operationId, v, `${path}/${i}`);
    return;
  }
  if (!value || typeof value !== 'object') return;
  for (const [k, v] of Object.entries(value)) {
    if ((TIME_MEMBERS.has(k) || k === 'at' || k.endsWith('At')) && v !== null && typeof v !== 'object') {
      expect(v, `${operationId} ${path}/${k} is RFC 3339`).toMatch(API_TIME);
      timesSeen.add(k);
    } else {
      checkTimes(operationId, v, `${path}/${k}`);
    }
  }
}

/**
 * Checks a real response against the spec: the status is one the operation declares, errors are problem+json, and
 * the body validates against the declared schema.
 */
function conforms(operationId: string, res: ApiResponse): void {
  const op = spec.byId.get(operationId);
  expect(op, `operation ${operationId} in the spec`).toBeDefined();
  const declared = Object.keys((op!.operation.responses ?? {}) as JsonObject);
  expect(declared, `${operationId} declares status ${res.status} (body: ${JSON.stringify(res.body)?.slice(0, 300)})`).toContain(String(res.status));
  if (res.status >= 400 && !operationId.startsWith('ofrep')) {
    expect(res.headers.get('content-type'), `${operationId} ${res.status} content type`).toMatch(/^application\/problem\+json/);
  }
  const key = `${operationId} ${res.status}`;
  if (!validators.has(key)) {
    const schema = responseSchema(operationId, res.status);
    validators.set(key, schema ? ajv.compile(schema) : null);
  }
  const validate = validators.get(key);
  if (validate) {
    const ok = validate(res.body);
    expect(ok, `${key} body ${JSON.stringify(res.body)?.slice(0, 500)}\nerrors: ${JSON.stringify(validate.errors, null, 1)}`).toBe(true);
  } else if (res.status !== 304) {
    expect(res.body ?? '', `${key} has no body in the spec`).toBe('');
  }
  if (res.status < 300) checkTimes(operationId, res.body);
  const statuses = exercised.get(operationId) ?? new Set<number>();
  statuses.add(res.status);
  exercised.set(operationId, statuses);
}

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer();
});
afterAll(async () => {
  await srv?.close();
});

describe('the OpenAPI document', () => {
  it('is served at /openapi.json, identical to openapi/openapi.yaml', async () => {
    const res = await request(srv, 'GET', '/openapi.json', { token: null });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.body).toEqual(parse(readFileSync(SPEC_PATH, 'utf8')));
    conforms('getOpenApi', res);
  });

  it('has a registered route for every operation, and an operation for every API route', () => {
    // HEAD routes are fastify's twins of GET routes; OPTIONS are the CORS preflights of the SDK routes (@fastify/cors).
    const routes = srv.app.routeTable.filter((r) => r.method !== 'HEAD' && r.method !== 'OPTIONS' && isApiRoute(r.url));
    const routeKeys = new Set(routes.map((r) => `${r.method} ${r.url}`));
    const opKeys = new Set(spec.operations.map((o) => `${o.method.toUpperCase()} ${o.routePath}`));
    const withoutRoute = [...opKeys].filter((k) => !routeKeys.has(k));
    const withoutOperation = [...routeKeys].filter((k) => !opKeys.has(k));
    expect(withoutOperation, 'routes the spec does not describe').toEqual([]);
    expect(withoutRoute, 'operations no route implements').toEqual([]);
    // The table is real: it holds the routes this server answers.
    expect(routes.length).toBeGreaterThan(30);
  });
});

describe('real responses conform to the spec', () => {
  it('environments, flags, states, kill switches, panic, segments, audit and tokens', async () => {
    const a = api(srv);
    conforms('listEnvironments', await a.get('/api/v1/environments'));
    conforms('createEnvironment', await a.post('/api/v1/environments', { key: 'qa', name: 'QA' }));
    conforms('createEnvironment', await a.post('/api/v1/environments', { key: 'qa' }));
    conforms('createEnvironment', await a.post('/api/v1/environments', { key: 'Not Valid' }));
    conforms('getEnvironment', await a.get('/api/v1/environments/qa'));
    conforms('getEnvironment', await a.get('/api/v1/environments/nope'));
    conforms('listEnvironments', await request(srv, 'GET', '/api/v1/environments', { token: null }));
    conforms('listEnvironments', await request(srv, 'GET', '/api/v1/environments', { token: srv.sdkKeys.production }));

    conforms('createFlag', await a.post('/api/v1/flags', { key: 'checkout', kind: 'boolean', description: 'new checkout', tags: ['web'] }));
    conforms(
      'createFlag',
      await a.post('/api/v1/flags', {
        key: 'banner',
        kind: 'string',
        variants: [
          { key: 'a', value: 'A' },
          { key: 'b', value: 'B' },
        ],
      }),
    );
    conforms('createFlag', await a.post('/api/v1/flags', { key: 'checkout', kind: 'boolean' }));
    conforms('createFlag', await a.post('/api/v1/flags', { key: 'x', kind: 'string', variants: [{ key: 'a', value: 1 }] }));
    conforms('listFlags', await a.get('/api/v1/flags?tag=web'));
    conforms('listFlags', await a.get('/api/v1/flags?archived=maybe'));
    const got = await a.get('/api/v1/flags/checkout');
    conforms('getFlag', got);
    conforms('getFlag', await a.get('/api/v1/flags/nope'));
    const etag = got.headers.get('etag')!;
    conforms('updateFlag', await a.patch('/api/v1/flags/checkout', { description: 'the new checkout' }, { headers: { 'if-match': etag } }));
    conforms('updateFlag', await a.patch('/api/v1/flags/checkout', { description: 'stale' }, { headers: { 'if-match': etag } }));
    conforms('updateFlag', await a.patch('/api/v1/flags/checkout', { colour: 'red' }));

    conforms(
      'createSegment',
      await a.post('/api/v1/segments', {
        key: 'staff',
        included: ['u-1'],
        rules: [{ conditions: [{ attribute: 'email', op: 'endsWith', values: ['@acme.com'] }] }],
      }),
    );
    conforms('createSegment', await a.post('/api/v1/segments', { key: 'staff' }));
    conforms('createSegment', await a.post('/api/v1/segments', { included: 'u-1' }));
    conforms('listSegments', await a.get('/api/v1/segments'));
    const seg = await a.get('/api/v1/segments/staff');
    conforms('getSegment', seg);
    conforms('getSegment', await a.get('/api/v1/segments/nope'));
    conforms(
      'putSegment',
      await a.put('/api/v1/segments/staff', { ...seg.body, excluded: ['u-9'] }, { headers: { 'if-match': seg.headers.get('etag')! } }),
    );
    conforms('putSegment', await a.put('/api/v1/segments/beta', { included: ['u-2'] }));
    conforms('putSegment', await a.put('/api/v1/segments/staff', { included: ['u-3'] }, { headers: { 'if-match': seg.headers.get('etag')! } }));

    const state = await a.get('/api/v1/flags/checkout/environments/production');
    conforms('getFlagState', state);
    conforms('getFlagState', await a.get('/api/v1/flags/checkout/environments/nope'));
    const newState = {
      ...state.body,
      enabled: true,
      targets: [{ variant: 'on', keys: ['user-1'] }],
      rules: [{ id: 'staff', conditions: [{ segment: 'staff' }], serve: { variant: 'on' } }],
      fallthrough: {
        rollout: {
          weights: [
            { variant: 'on', percent: 12.5 },
            { variant: 'off', percent: 87.5 },
          ],
        },
      },
      reason: 'ramp',
    };
    conforms(
      'putFlagState',
      await a.put('/api/v1/flags/checkout/environments/production', newState, { headers: { 'if-match': state.headers.get('etag')! } }),
    );
    conforms(
      'putFlagState',
      await a.put('/api/v1/flags/checkout/environments/production', newState, { headers: { 'if-match': state.headers.get('etag')! } }),
    );
    conforms(
      'putFlagState',
      await a.put('/api/v1/flags/checkout/environments/production', {
        ...newState,
        fallthrough: { rollout: { weights: [{ variant: 'on', percent: 50 }] } },
      }),
    );
    conforms('deleteSegment', await a.delete('/api/v1/segments/staff'));

    conforms('killFlag', await a.post('/api/v1/flags/checkout/environments/production/kill', { reason: 'incident' }));
    conforms('killFlag', await a.post('/api/v1/flags/checkout/environments/production/kill?waitMs=20'));
    conforms('killFlag', await a.post('/api/v1/flags/checkout/environments/production/kill', { reason: 42 }));
    conforms('reviveFlag', await a.post('/api/v1/flags/checkout/environments/production/revive'));
    conforms('reviveFlag', await a.post('/api/v1/flags/nope/environments/production/revive'));
    conforms('killAll', await a.post('/api/v1/environments/production/kill-all', { reason: 'panic', except: ['banner'] }));
    conforms('killAll', await a.post('/api/v1/environments/production/kill-all', { except: 'banner' }));
    conforms('reviveAll', await a.post('/api/v1/environments/production/revive-all'));
    conforms('reviveAll', await a.post('/api/v1/environments/nope/revive-all'));
    conforms('deleteSegment', await a.delete('/api/v1/segments/beta'));

    const page = await a.get('/api/v1/audit?limit=2');
    conforms('listAudit', page);
    expect(page.body.nextCursor).toEqual(expect.any(String));
    conforms('listAudit', await a.get(`/api/v1/audit?limit=2&cursor=${encodeURIComponent(page.body.nextCursor)}&flag=checkout`));
    conforms('listAudit', await a.get('/api/v1/audit?from=yesterday'));

    const token = await a.post('/api/v1/tokens', { kind: 'sdk', environment: 'qa', name: 'qa app' });
    conforms('createToken', token);
    expect((await request(srv, 'GET', '/sdk/v1/flags', { token: token.body.token })).status).toBe(200);
    conforms('createToken', await a.post('/api/v1/tokens', { kind: 'root', name: 'x' }));
    conforms('listTokens', await a.get('/api/v1/tokens'));
    const used = await a.get(`/api/v1/tokens/${token.body.id}`);
    conforms('getToken', used);
    expect(used.body.lastUsedAt).toMatch(API_TIME);
    conforms('getToken', await a.get('/api/v1/tokens/nope'));
    conforms('deleteToken', await a.delete(`/api/v1/tokens/${token.body.id}`, { body: { reason: 'rotated' } }));
    conforms('deleteToken', await a.delete('/api/v1/tokens/configured-admin'));

    conforms('listConnectedSdks', await a.get('/api/v1/environments/production/sdks'));
    // A real SDK, so the list has an SDK that connected and acknowledged a version (its times are not null).
    const sdk = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
    try {
      await sdk.ready();
      const killed = await a.post('/api/v1/flags/checkout/environments/production/kill?waitMs=5000');
      conforms('killFlag', killed);
      expect(killed.body.delivery).toMatchObject({ connected: 1, applied: 1, complete: true });
      const sdks = await a.get('/api/v1/environments/production/sdks');
      conforms('listConnectedSdks', sdks);
      expect(sdks.body.items).toEqual([
        expect.objectContaining({ connectedAt: expect.stringMatching(API_TIME), appliedAt: expect.stringMatching(API_TIME) }),
      ]);
    } finally {
      await sdk.close();
    }
    conforms('listConnectedSdks', await a.get('/api/v1/environments/nope/sdks'));
    conforms('deleteFlag', await a.delete('/api/v1/flags/banner'));
    conforms('deleteFlag', await a.delete('/api/v1/flags/nope'));
  });

  it('SDK routes: snapshot, 304, evaluation, stream upgrade', async () => {
    const key = srv.sdkKeys.production;
    const snap = await request(srv, 'GET', '/sdk/v1/flags', { token: key });
    conforms('getSdkSnapshot', snap);
    conforms('getSdkSnapshot', await request(srv, 'GET', '/sdk/v1/flags', { token: key, headers: { 'if-none-match': snap.headers.get('etag')! } }));
    conforms('getSdkSnapshot', await request(srv, 'GET', '/sdk/v1/flags', { token: srv.adminToken }));
    conforms('sdkEvaluate', await request(srv, 'POST', '/sdk/v1/evaluate', { token: key, body: { context: { key: 'user-1', plan: 'pro' } } }));
    conforms(
      'sdkEvaluate',
      await request(srv, 'POST', '/sdk/v1/evaluate', { token: key, body: { context: { key: 'u' }, flags: ['checkout', 'missing'] } }),
    );
    conforms('sdkEvaluate', await request(srv, 'POST', '/sdk/v1/evaluate', { token: key, body: { context: { key: { nested: true } } } }));
    conforms('sdkEvaluate', await request(srv, 'POST', '/sdk/v1/evaluate', { token: null, body: { context: {} } }));

    conforms(
      'ofrepEvaluateFlag',
      await request(srv, 'POST', '/ofrep/v1/evaluate/flags/checkout', { token: key, body: { context: { targetingKey: 'user-1' } } }),
    );
    conforms('ofrepEvaluateFlag', await request(srv, 'POST', '/ofrep/v1/evaluate/flags/missing', { token: key, body: { context: {} } }));
    conforms(
      'ofrepEvaluateFlag',
      await request(srv, 'POST', '/ofrep/v1/evaluate/flags/checkout', { token: key, body: { context: { targetingKey: 7 } } }),
    );
    conforms('ofrepEvaluateFlag', await request(srv, 'POST', '/ofrep/v1/evaluate/flags/checkout', { token: null, body: {} }));
    const bulk = await request(srv, 'POST', '/ofrep/v1/evaluate/flags', { token: key, body: { context: { targetingKey: 'user-1', plan: 'pro' } } });
    conforms('ofrepEvaluateFlags', bulk);
    conforms(
      'ofrepEvaluateFlags',
      await request(srv, 'POST', '/ofrep/v1/evaluate/flags', {
        token: key,
        body: { context: { targetingKey: 'user-1', plan: 'pro' } },
        headers: { 'if-none-match': bulk.headers.get('etag')! },
      }),
    );
    conforms('ofrepEvaluateFlags', await request(srv, 'POST', '/ofrep/v1/evaluate/flags', { token: key, body: { context: [] } }));
    // OFREP change events (the 200 is a stream that stays open: test/e2e/ofrep-events.test.ts reads it).
    expect(bulk.body.eventStreams[0].endpoint.requestUri).toMatch(/^\/ofrep\/v1\/events\?ticket=/);
    conforms('ofrepEvents', await request(srv, 'GET', '/ofrep/v1/events', { token: null }));
    conforms('ofrepEvents', await request(srv, 'GET', '/ofrep/v1/events?ticket=forged.x', { token: null }));

    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${srv.url.replace('http', 'ws')}/sdk/v1/stream`, ['aviary.v1'], { headers: { authorization: `Bearer ${key}` } });
      ws.on('upgrade', (res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('error', reject);
    });
    expect(status).toBe(101);
    exercised.set('sdkStream', new Set([101]));
  });

  it('canaries and metrics', async () => {
    const a = api(srv);
    conforms('createFlag', await a.post('/api/v1/flags', { key: 'search', kind: 'boolean' }));
    conforms('createFlag', await a.post('/api/v1/flags', { key: 'search2', kind: 'boolean' }));
    conforms('createSegment', await a.post('/api/v1/segments', { key: 'internal', included: ['u-1'] }));
    const doc = {
      control: 'off',
      canary: 'on',
      stages: [{ segment: 'internal' }, { percent: 5 }, { percent: 50 }],
      stageDurationSeconds: 3600,
      guard: { minSamples: 50 },
    };
    const base = '/api/v1/flags/search/environments/production/canary';
    conforms('getCanary', await a.get(base));
    conforms('putCanary', await a.put(base, doc));
    conforms('putCanary', await a.put(base, { ...doc, canary: 'nope' }));
    conforms('putCanary', await a.put(base, { ...doc, stages: [{ percent: 0 }] }));
    const status = await a.get(base);
    conforms('getCanary', status);
    conforms('putCanary', await a.put(base, status.body));
    conforms('pauseCanary', await a.post(`${base}/pause`, { reason: 'look' }));
    conforms('resumeCanary', await a.post(`${base}/resume`));
    conforms('advanceCanary', await a.post(`${base}/advance`));
    conforms('rollbackCanary', await a.post(`${base}/rollback`, { reason: 'errors' }));
    conforms('advanceCanary', await a.post(`${base}/advance`));
    conforms('deleteCanary', await a.delete(base));
    conforms('deleteCanary', await a.delete(base));
    const base2 = '/api/v1/flags/search2/environments/production/canary';
    conforms('putCanary', await a.put(base2, { control: 'off', canary: 'on', stages: [{ percent: 10 }] }));
    conforms('promoteCanary', await a.post(`${base2}/promote`));
    conforms('pauseCanary', await a.post('/api/v1/flags/nope/environments/production/canary/pause'));
    conforms('resumeCanary', await a.post(`${base2}/resume`, { colour: 'red' }));

    const key = srv.sdkKeys.production;
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    const report = {
      sdkId: 'sdk-openapi-test',
      seq: 1,
      sdk: { name: 'test', version: '0.0.0' },
      stats: [
        { flag: 'search', variant: 'on', minute, evaluations: 10, reasons: { FALLTHROUGH: 10 }, outcomes: 4, errors: 1, latency: { '100': 4 } },
      ],
    };
    conforms('sdkMetrics', await request(srv, 'POST', '/sdk/v1/metrics', { token: key, body: report }));
    conforms('sdkMetrics', await request(srv, 'POST', '/sdk/v1/metrics', { token: key, body: report }));
    conforms('sdkMetrics', await request(srv, 'POST', '/sdk/v1/metrics', { token: key, body: { ...report, seq: -1 } }));
    conforms('sdkMetrics', await request(srv, 'POST', '/sdk/v1/metrics', { token: srv.adminToken, body: report }));
    const metrics = await a.get(`/api/v1/flags/search/environments/production/metrics?from=${minute - 60_000}`);
    conforms('getFlagMetrics', metrics);
    expect(metrics.body.totals.on.evaluations).toBe(10);
    conforms('getFlagMetrics', await a.get('/api/v1/flags/search/environments/production/metrics?from=soon'));
    conforms('getFlagMetrics', await a.get('/api/v1/flags/nope/environments/production/metrics'));
  });

  it("a canary's measured exposure (needs whole minutes of reports: a server on a clock of its own)", async () => {
    let t = Date.UTC(2026, 11, 6, 9, 0, 10);
    const clocked = await startServer({ now: () => t });
    try {
      const a = api(clocked);
      await a.post('/api/v1/flags', { key: 'exposed', kind: 'boolean' });
      const base = '/api/v1/flags/exposed/environments/production/canary';
      expect(
        (await a.put(base, { control: 'off', canary: 'on', stages: [{ percent: 10 }, { percent: 50 }], stageDurationSeconds: 3600 })).status,
      ).toBe(201);
      t += 3 * 60_000;
      const minute = Math.floor(t / 60_000) * 60_000 - 60_000;
      const stats = [
        { flag: 'exposed', variant: 'on', minute, evaluations: 10, reasons: { RULE_MATCH: 10 }, outcomes: 0, errors: 0 },
        { flag: 'exposed', variant: 'off', minute, evaluations: 90, reasons: { RULE_MATCH: 90 }, outcomes: 0, errors: 0 },
      ];
      expect(
        (await request(clocked, 'POST', '/sdk/v1/metrics', { token: clocked.sdkKeys.production, body: { sdkId: 'sdk-exposure', seq: 1, stats } }))
          .status,
      ).toBe(200);
      const status = await a.get(base);
      conforms('getCanary', status);
      expect(status.body.exposure.measured).toMatchObject({ evaluations: 100, canaryEvaluations: 10 });
    } finally {
      await clocked.close();
    }
  });

  it('scheduled changes (issue 14)', async () => {
    const a = api(srv);
    await a.post('/api/v1/flags', { key: 'scheduled', kind: 'boolean' });
    const base = '/api/v1/flags/scheduled/environments/production/schedules';
    const created = await a.post(base, { at: new Date(Date.now() + 3_600_000).toISOString(), action: 'kill', reason: 'later' });
    conforms('createSchedule', created);
    conforms(
      'createSchedule',
      await a.post(base, {
        at: Date.now() + 3_600_000,
        action: 'state',
        state: { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } },
      }),
    );
    conforms('createSchedule', await a.post(base, { at: 'soon', action: 'kill' }));
    conforms('createSchedule', await a.post('/api/v1/flags/nope/environments/production/schedules', { at: Date.now() + 60_000, action: 'kill' }));
    conforms('listSchedules', await a.get(base));
    conforms('listSchedules', await a.get(`${base}?status=never`));
    conforms('getSchedule', await a.get(`${base}/${created.body.id}`));
    conforms('getSchedule', await a.get(`${base}/nope`));
    conforms('cancelSchedule', await a.delete(`${base}/${created.body.id}`));
    conforms('cancelSchedule', await a.delete(`${base}/${created.body.id}`));
    // A schedule that ran has a `ranAt`.
    const due = await a.post(base, { at: Date.now(), action: 'revive' });
    for (let i = 0; i < 100 && (await a.get(`${base}/${due.body.id}`)).body.status === 'pending'; i++) await new Promise((r) => setTimeout(r, 20));
    const ran = await a.get(`${base}/${due.body.id}`);
    expect(ran.body.status).toBe('done');
    conforms('getSchedule', ran);
  });

  it('triggers (issue 15)', async () => {
    const a = api(srv);
    await a.post('/api/v1/flags', { key: 'triggered', kind: 'boolean' });
    const base = '/api/v1/flags/triggered/environments/production/triggers';
    const created = await a.post(base, { action: 'kill', name: 'alertmanager' });
    conforms('createTrigger', created);
    conforms('createTrigger', await a.post(base, { action: 'explode', name: 'x' }));
    conforms('createTrigger', await a.post('/api/v1/flags/nope/environments/production/triggers', { action: 'kill', name: 'x' }));
    const hook = new URL(created.body.url).pathname;
    conforms('fireTrigger', await request(srv, 'POST', hook, { token: null, body: '{"status":"firing","alerts":[]}' }));
    conforms('fireTrigger', await request(srv, 'POST', '/hooks/v1/triggers/wrong', { token: null }));
    conforms(
      'fireTrigger',
      await request(srv, 'POST', hook, { token: null, body: 'x'.repeat(1024 * 1024 + 1), headers: { 'content-type': 'text/plain' } }),
    );
    conforms('listTriggers', await a.get(base));
    conforms('listTriggers', await a.get('/api/v1/flags/nope/environments/production/triggers'));
    conforms('deleteTrigger', await a.delete(`${base}/${created.body.id}`));
    conforms('deleteTrigger', await a.delete(`${base}/${created.body.id}`));
  });

  it('outbound webhooks (issue 15)', async () => {
    const a = api(srv);
    const rx = await startReceiver();
    try {
      const created = await a.post('/api/v1/webhooks', { url: rx.url, events: ['flag.killed'], name: 'spec' });
      conforms('createWebhook', created);
      conforms('createWebhook', await a.post('/api/v1/webhooks', { url: 'ftp://x', events: ['flag.killed'] }));
      conforms('listWebhooks', await a.get('/api/v1/webhooks'));
      conforms('getWebhook', await a.get(`/api/v1/webhooks/${created.body.id}`));
      conforms('getWebhook', await a.get('/api/v1/webhooks/nope'));
      conforms('updateWebhook', await a.patch(`/api/v1/webhooks/${created.body.id}`, { name: 'renamed', environments: null }));
      conforms('testWebhook', await a.post(`/api/v1/webhooks/${created.body.id}/test`));
      await rx.waitFor(1);
      const deliveries = `/api/v1/webhooks/${created.body.id}/deliveries`;
      for (let i = 0; i < 100 && (await a.get(deliveries)).body.deliveries[0].status === 'pending'; i++) await new Promise((r) => setTimeout(r, 20));
      const log = await a.get(deliveries);
      expect(log.body.deliveries[0].deliveredAt).not.toBeNull();
      conforms('listWebhookDeliveries', log);
      conforms('deleteWebhook', await a.delete(`/api/v1/webhooks/${created.body.id}`));
      conforms('deleteWebhook', await a.delete(`/api/v1/webhooks/${created.body.id}`));
    } finally {
      await rx.close();
    }
  });

  it('history, the state at a time, diffs and revert (issue 14)', async () => {
    const a = api(srv);
    const path = '/api/v1/flags/hist/environments/production';
    conforms('createFlag', await a.post('/api/v1/flags', { key: 'hist', kind: 'boolean' }));
    const created = Date.now();
    conforms('putFlagState', await a.put(path, { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' }, reason: 'on' }));
    conforms('killFlag', await a.post(`${path}/kill`, { reason: 'stop' }));
    const page = await a.get(`${path}/history?limit=2`);
    conforms('listFlagStateHistory', page);
    conforms('listFlagStateHistory', await a.get(`${path}/history?cursor=${page.body.nextCursor}`));
    conforms('listFlagStateHistory', await a.get(`${path}/history?cursor=zzz`));
    conforms('listFlagStateHistory', await a.get('/api/v1/flags/none/environments/production/history'));
    conforms('getFlagState', await a.get(`${path}?at=${Date.now()}`));
    conforms('getFlagState', await a.get(`${path}?at=${created - 60_000}`));
    conforms('diffFlagStateVersions', await a.get(`${path}/history/diff?from=1&to=3`));
    conforms('diffFlagStateVersions', await a.get(`${path}/history/diff?from=1&to=30`));
    conforms('diffFlagStateVersions', await a.get(`${path}/history/diff?from=0`));
    conforms('revertFlagState', await a.post(`${path}/revert`, { version: 2, reason: 'back' }));
    conforms('revertFlagState', await a.post(`${path}/revert`, { version: 20 }));
    conforms('revertFlagState', await a.post(`${path}/revert`, { version: 1 }, { headers: { 'if-match': '"v1"' } }));
    conforms('revertFlagState', await a.post(`${path}/revert`, {}));
    conforms('deleteFlag', await a.delete('/api/v1/flags/hist'));
    conforms('revertFlagState', await a.post(`${path}/revert`, { version: 1 }));
  });

  it('change requests: approval on, a held PUT, approve, reject, apply, conflicts', async () => {
    const a = api(srv);
    const other = (await a.post('/api/v1/tokens', { kind: 'admin', name: 'openapi-reviewer' })).body.token as string;
    const b = api({ url: srv.url, adminToken: other });
    conforms('updateEnvironment', await a.patch('/api/v1/environments/qa', { requireApproval: true }));
    conforms('updateEnvironment', await a.patch('/api/v1/environments/qa', {}));
    conforms('updateEnvironment', await a.patch('/api/v1/environments/nope', { requireApproval: true }));
    await a.post('/api/v1/flags', { key: 'held', kind: 'boolean' });
    const state = { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } };
    const held = await a.put('/api/v1/flags/held/environments/qa', state);
    expect(held.status).toBe(202);
    conforms('putFlagState', held);
    conforms('getChangeRequest', await a.get(`/api/v1/change-requests/${held.body.id}`));
    conforms('getChangeRequest', await a.get('/api/v1/change-requests/nope'));
    conforms('listChangeRequests', await a.get('/api/v1/change-requests?environment=qa&status=pending'));
    conforms('listChangeRequests', await a.get('/api/v1/change-requests?status=bogus'));
    conforms('approveChangeRequest', await a.post(`/api/v1/change-requests/${held.body.id}/approve`));
    conforms('applyChangeRequest', await a.post(`/api/v1/change-requests/${held.body.id}/apply`));
    conforms('approveChangeRequest', await b.post(`/api/v1/change-requests/${held.body.id}/approve`, { reason: 'ok' }));
    conforms('approveChangeRequest', await b.post(`/api/v1/change-requests/${held.body.id}/approve`));
    conforms('applyChangeRequest', await a.post(`/api/v1/change-requests/${held.body.id}/apply`));
    const second = await a.put('/api/v1/flags/held/environments/qa', { ...state, enabled: false });
    const third = await a.put('/api/v1/flags/held/environments/qa', { ...state, fallthrough: { variant: 'off' } });
    conforms('rejectChangeRequest', await a.post(`/api/v1/change-requests/${second.body.id}/reject`, { reason: 'withdrawn' }));
    conforms('rejectChangeRequest', await a.post(`/api/v1/change-requests/${second.body.id}/reject`));
    await b.post(`/api/v1/change-requests/${third.body.id}/approve`);
    await a.post('/api/v1/flags/held/environments/qa/kill');
    const moved = await a.post(`/api/v1/change-requests/${third.body.id}/apply`);
    expect(moved.status).toBe(409);
    conforms('applyChangeRequest', moved);
    expect(exercised.get('applyChangeRequest')).toEqual(new Set([200, 409]));
  });

  it('operations routes', async () => {
    conforms('healthz', await request(srv, 'GET', '/healthz', { token: null }));
    conforms('readyz', await request(srv, 'GET', '/readyz', { token: null }));
    const metrics = await fetch(`${srv.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('aviary_http_requests_total');
    exercised.set('prometheusMetrics', new Set([200]));
  });

  it('the SDK browser bundle and its source map', async () => {
    ensureSdkBundle();
    const bundle = await fetch(`${srv.url}/sdk/v1/aviary.js`);
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await bundle.text()).toContain('sourceMappingURL=aviary.js.map');
    const etag = bundle.headers.get('etag')!;
    expect((await fetch(`${srv.url}/sdk/v1/aviary.js`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    exercised.set('getSdkBrowserBundle', new Set([200, 304]));
    const map = await request(srv, 'GET', '/sdk/v1/aviary.js.map', { token: null });
    conforms('getSdkBrowserBundleSourceMap', map);
    conforms(
      'getSdkBrowserBundleSourceMap',
      await request(srv, 'GET', '/sdk/v1/aviary.js.map', { token: null, headers: { 'if-none-match': map.headers.get('etag')! } }),
    );
    expect(exercised.get('getSdkBrowserBundleSourceMap')).toEqual(new Set([200, 304]));
  });

  // ---- roles and tokens (issue 17) ----
  it('roles and tokens: me, create with role and expiry, rotate', async () => {
    const a = api(srv);
    conforms('getMe', await a.get('/api/v1/me'));
    conforms('getMe', await request(srv, 'GET', '/api/v1/me', { token: null }));
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const editor = await a.post('/api/v1/tokens', { kind: 'admin', role: 'editor', environments: ['staging'], name: 'ed', expiresAt });
    conforms('createToken', editor);
    conforms('getMe', await a.get('/api/v1/me', { token: editor.body.token }));
    conforms('createToken', await a.post('/api/v1/tokens', { kind: 'admin', role: 'viewer', environments: ['staging'], name: 'v' }));
    const rotated = await a.post(`/api/v1/tokens/${editor.body.id}/rotate`, { overlapSeconds: 60 });
    conforms('rotateToken', rotated);
    conforms('getToken', await a.get(`/api/v1/tokens/${editor.body.id}`));
    conforms('rotateToken', await a.post(`/api/v1/tokens/${editor.body.id}/rotate`, {}));
    conforms('rotateToken', await a.post('/api/v1/tokens/nope/rotate'));
    conforms('rotateToken', await a.post(`/api/v1/tokens/${rotated.body.id}/rotate`, { overlapSeconds: -1 }));
    conforms('rotateToken', await a.post(`/api/v1/tokens/${rotated.body.id}/rotate`, {}, { token: rotated.body.token }));
  });
  // ---- end of roles and tokens ----

  it('rejects a response that breaks the schema (the checks above can fail)', () => {
    const validate = ajv.compile(responseSchema('getEnvironment', 200)!);
    expect(validate({ key: 'qa', name: 'QA', version: 1, createdAt: '2026-01-01T00:00:00.000Z', requireApproval: false })).toBe(true);
    expect(validate({ key: 'qa', name: 'QA', version: 1, createdAt: '2026-01-01', requireApproval: false })).toBe(false);
    expect(validate({ key: 'qa', name: 'QA', version: 1, createdAt: 1767225600000, requireApproval: false })).toBe(false);
    expect(() => checkTimes('getEnvironment', { createdAt: 1767225600000 })).toThrow();
    expect(() => checkTimes('listAudit', { entries: [{ after: { killedAt: 1767225600000 } }] })).toThrow();
  });

  it('sees every time member of the answers in the spec, as RFC 3339, in a real answer', () => {
    // The spec's date-times, as found by walking its response schemas (so a new one is checked without editing this).
    expect([...TIME_MEMBERS].sort()).toEqual(
      expect.arrayContaining([
        'at',
        'createdAt',
        'killedAt',
        'lastUsedAt',
        'revokedAt',
        'updatedAt',
        'connectedAt',
        'appliedAt',
        'from',
        'to',
        'start',
      ]),
    );
    expect([...TIME_MEMBERS].filter((k) => !timesSeen.has(k)).sort()).toEqual([]);
  });

  it('every operation of the spec was checked against a real response', () => {
    const unchecked = spec.operations.map((o) => o.operationId).filter((id) => !exercised.has(id));
    expect(unchecked).toEqual([]);
  });
});
