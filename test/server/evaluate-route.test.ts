/**
 * `POST /sdk/v1/evaluate` is an ordinary fastify route: its answer is serialized by fast-json-stringify from the
 * OpenAPI document's `EvaluateResponse` schema, which writes only the fields the schema names. So the answers are
 * compared, field for field, with the core's own evaluation on every golden case (test/cases/evaluation.json: every
 * reason kind and reason field, every error code the server can answer, every value kind); a field the core adds and
 * the schema forgets fails here. Also: what clients send that is not the plain case (odd keys, large bodies, bad
 * bodies, other content types, keys of other kinds).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  compileEnvironment,
  evaluateFlag,
  type EnvironmentSnapshot,
  type EvaluationContext,
  type EvaluationDetail,
  type JsonValue,
} from '../../sdk/core/index.js';
import { loggerOptions } from '../../server/ops/logging.js';
import { api, request, startServer, type TestServer } from '../helpers/server.js';
import { logSink } from '../helpers/log-sink.js';

interface Case {
  name: string;
  flag: string;
  context: EvaluationContext;
  default: unknown;
  expect: EvaluationDetail;
}
const golden = JSON.parse(readFileSync(join(import.meta.dirname, '../cases/evaluation.json'), 'utf8')) as {
  serverRefuses: string[];
  environment: EnvironmentSnapshot;
  cases: Case[];
};
// The golden environment has flags the API refuses to store (a rule naming a segment that does not exist, a
// prerequisite naming a missing flag, a prerequisite cycle): the server answers FLAG_NOT_FOUND for them, as for any
// unknown key (their states stay the default one, which the evaluation below does not see: they are not created).
const STORABLE = golden.environment.flags.filter((f) => !golden.serverRefuses.includes(f.key));
// Contexts the request schema accepts (attribute values are scalars or arrays of scalars; one case tests `null`).
const scalar = (v: unknown) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
const CASES = golden.cases.filter((c) => Object.values(c.context).every((v) => scalar(v) || (Array.isArray(v) && v.every(scalar))));

let srv: TestServer;
let snapshot: EnvironmentSnapshot;
beforeAll(async () => {
  srv = await startServer();
  const a = api(srv);
  for (const segment of golden.environment.segments) expect((await a.post('/api/v1/segments', segment)).status).toBe(201);
  // Every definition first: a state may require a flag listed after it.
  for (const flag of STORABLE) expect((await a.post('/api/v1/flags', { key: flag.key, kind: flag.kind, variants: flag.variants })).status).toBe(201);
  for (const flag of STORABLE) {
    const { version: _version, ...state } = flag.state;
    expect((await a.put(`/api/v1/flags/${flag.key}/environments/production`, state)).status).toBe(200);
  }
  snapshot = (await a.get('/sdk/v1/flags', { token: srv.sdkKeys.production })).body as EnvironmentSnapshot;
});
afterAll(async () => {
  await srv.close();
});

const evaluateOn = (token: string, body: unknown, headers: Record<string, string> = {}) =>
  request(srv, 'POST', '/sdk/v1/evaluate', { token, body, headers });
const evaluate = (body: unknown, headers: Record<string, string> = {}) => evaluateOn(srv.sdkKeys.production, body, headers);

/** What the route must answer for a flag: the core's evaluation of the server's own snapshot, as JSON. */
function coreAnswer(env: ReturnType<typeof compileEnvironment>, key: string, context: EvaluationContext): unknown {
  const flag = env.flags.get(key);
  const detail = flag
    ? evaluateFlag<JsonValue>(flag, context, null, true)
    : { value: null, reason: { kind: 'ERROR', errorCode: 'FLAG_NOT_FOUND' }, errorCode: 'FLAG_NOT_FOUND' };
  return JSON.parse(JSON.stringify(detail));
}

describe('answers equal the core, field for field, on the golden cases', () => {
  it('each case asked by key: the core on the same flags, and the golden result itself wherever the caller default plays no part', async () => {
    expect(CASES.length).toBe(golden.cases.length - 1);
    const env = compileEnvironment(snapshot);
    const reasonFields = new Set<string>();
    const topFields = new Set<string>();
    for (const c of CASES) {
      const res = await evaluate({ context: c.context, flags: [c.flag] });
      expect(res.status, c.name).toBe(200);
      expect(Object.keys(res.body.flags), c.name).toEqual([c.flag]);
      const answer = res.body.flags[c.flag];
      expect(answer, c.name).toStrictEqual(coreAnswer(env, c.flag, c.context));
      // Served variants do not depend on the caller's default (the route has none: it serves each flag's own kind).
      // (The flags the server refuses to store are unknown to it, so their golden results cannot be its answers.)
      if (c.expect.reason.kind !== 'ERROR' && !golden.serverRefuses.includes(c.flag)) expect(answer, c.name).toStrictEqual(c.expect);
      for (const k of Object.keys(answer)) topFields.add(k);
      for (const k of Object.keys(answer.reason)) reasonFields.add(k);
    }
    // Every field an answer can carry went through the serializer at least once.
    expect([...topFields].sort()).toEqual(['errorCode', 'reason', 'value', 'variant']);
    expect([...reasonFields].sort()).toEqual([
      'bucket',
      'bucketByMissing',
      'errorCode',
      'inRollout',
      'kind',
      'prerequisiteKey',
      'ruleId',
      'ruleIndex',
    ]);
  });

  it('every flag at once, for every golden context: the whole answer', async () => {
    const env = compileEnvironment(snapshot);
    for (const c of CASES) {
      const res = await evaluate({ context: c.context });
      expect(res.status).toBe(200);
      const flags = Object.fromEntries(STORABLE.map((f) => [f.key, coreAnswer(env, f.key, c.context)]));
      expect(res.body, c.name).toStrictEqual({ environment: 'production', version: snapshot.version, flags });
    }
  });
});

describe('what clients send', () => {
  it('answers each requested key once, as its own property, whatever the key ("__proto__", "constructor", unknown, repeated)', async () => {
    const keys = ['constructor', 'op-in', '__proto__', 'nope', 'op-in', 'toString', '__proto__', 'config'];
    const res = await fetch(`${srv.url}/sdk/v1/evaluate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${srv.sdkKeys.production}`, 'content-type': 'application/json' },
      body: JSON.stringify({ context: { key: 'u', plan: 'pro' }, flags: keys }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const text = await res.text();
    expect(text.match(/"__proto__":/g)).toHaveLength(1);
    const body = JSON.parse(text) as { flags: Record<string, { value: unknown; reason: { kind: string; errorCode?: string } }> };
    expect(Object.keys(body.flags)).toEqual(['constructor', 'op-in', '__proto__', 'nope', 'toString', 'config']);
    const notFound = { value: null, reason: { kind: 'ERROR', errorCode: 'FLAG_NOT_FOUND' }, errorCode: 'FLAG_NOT_FOUND' };
    for (const key of ['constructor', '__proto__', 'nope', 'toString'])
      expect(Object.getOwnPropertyDescriptor(body.flags, key)?.value).toStrictEqual(notFound);
    expect(body.flags['op-in']).toStrictEqual({ value: true, variant: 'on', reason: { kind: 'RULE_MATCH', ruleId: 'r', ruleIndex: 0 } });
    expect(body.flags.config).toStrictEqual({ value: { limits: [1, 2], theme: 'dark' }, variant: 'v1', reason: { kind: 'FALLTHROUGH' } });
  });

  it('takes a large body in several chunks, with multi-byte characters across their boundaries, and a charset on the type', async () => {
    // Within the context budget (8 KiB of strings); the bulk is in the flag keys.
    const context = { key: 'big-ü', tags: Array.from({ length: 20 }, (_, i) => `${i}-${'ü€𝄞'.repeat(30)}`) };
    const flags = Array.from({ length: 900 }, (_, i) => `k-${i}-${'ü€𝄞'.repeat(20)}`);
    const res = await evaluate({ context, flags }, { 'content-type': 'application/json; charset=utf-8' });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.flags)).toEqual(flags);
  });

  it.each([
    ['malformed JSON', '{"context": {"key": '],
    ['prototype poisoning', '{"context": {"key": "u"}, "__proto__": {"admin": true}}'],
    ['a missing context', '{}'],
    ['a nested attribute', JSON.stringify({ context: { key: 'u', nested: { a: 1 } } })],
    ['flags of the wrong type', JSON.stringify({ context: { key: 'u' }, flags: 'op-in' })],
    ['an unknown property', JSON.stringify({ context: { key: 'u' }, extra: 1 })],
    ['a JSON array', '[1, 2]'],
  ])('a problem document for %s', async (_name, body) => {
    const res = await evaluate(body);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect(res.body).toMatchObject({ status: 400, instance: '/sdk/v1/evaluate' });
    expect(res.body.detail.length).toBeGreaterThan(0);
  });

  it.each([
    ['no key', null, {}, 401],
    ['an unknown key', 'nope-nope-nope', {}, 401],
    ['an admin token', 'ADMIN', {}, 403],
    ['a form body', 'PROD', { 'content-type': 'application/x-www-form-urlencoded' }, 415],
    ['a text body (not a media type the SDK API takes)', 'PROD', { 'content-type': 'text/plain' }, 415],
  ] as const)('%s', async (_name, token, headers, status) => {
    const key = token === 'ADMIN' ? srv.adminToken : token === 'PROD' ? srv.sdkKeys.production : token;
    const res = await request(srv, 'POST', '/sdk/v1/evaluate', {
      token: key,
      body: JSON.stringify({ context: { key: 'u' } }),
      headers: { 'content-type': 'application/json', ...headers },
    });
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it("a key of another environment evaluates that environment's flags", async () => {
    const res = await evaluateOn(srv.sdkKeys.staging, { context: { key: 'u', plan: 'pro' }, flags: ['op-in'] });
    expect(res.status).toBe(200);
    expect(res.body.environment).toBe('staging');
    // Created by the API, never configured in staging: off there.
    expect(res.body.flags['op-in']).toMatchObject({ reason: { kind: 'OFF' } });
  });
});

describe('logging', () => {
  let other: TestServer | undefined;
  afterEach(async () => {
    await other?.close();
    other = undefined;
  });

  it('a slow evaluation is warned about with its route, and no secret in the log', async () => {
    const log = logSink();
    other = await startServer({ logger: loggerOptions('info', log.stream), slowRequestMs: 0.000001 });
    const res = await request(other, 'POST', '/sdk/v1/evaluate', { token: other.sdkKeys.production, body: { context: { key: 'u' } } });
    expect(res.status).toBe(200);
    const warned = log.lines().filter((l) => l.msg === 'slow request');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({
      level: 40,
      req: { method: 'POST', url: '/sdk/v1/evaluate', route: '/sdk/v1/evaluate' },
      res: { statusCode: 200 },
    });
    expect(JSON.stringify(log.lines())).not.toContain(other.sdkKeys.production);
  });
});
