/**
 * Malformed bodies, headers and paths against every write route of the real server: never a 5xx, always a
 * problem+json 4xx, and nothing stored (the database's contents, audit log included, are byte-for-byte the same).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bodySchema, type JsonObject } from '../../server/openapi/spec.js';
import { api, startServer, type TestServer, sqliteOf } from '../helpers/server.js';

const KEY_PATTERN = /^[a-z0-9][a-z0-9._-]{0,127}$/;

interface WriteRoute {
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path with `{name}` placeholders, filled from `params`. */
  path: string;
  params: Record<string, string>;
  operationId: string;
  scope: 'admin' | 'sdk';
  /** A body the route would accept (so any mutation that slipped through would change something). */
  valid?: Record<string, unknown>;
  /** The spec allows the body to be omitted. */
  optionalBody?: boolean;
  /** The route honours If-Match. */
  ifMatch?: boolean;
}

const FLAG = { flag: 'fz', env: 'production' };
const minute = Math.floor(Date.now() / 60_000) * 60_000;

const ROUTES: WriteRoute[] = [
  {
    method: 'POST',
    path: '/api/v1/environments',
    params: {},
    operationId: 'createEnvironment',
    scope: 'admin',
    valid: { key: 'fz-new', name: 'New' },
  },
  {
    method: 'POST',
    path: '/api/v1/flags',
    params: {},
    operationId: 'createFlag',
    scope: 'admin',
    valid: { key: 'fz-new', kind: 'boolean', tags: ['a'] },
  },
  {
    method: 'PATCH',
    path: '/api/v1/flags/{flag}',
    params: FLAG,
    operationId: 'updateFlag',
    scope: 'admin',
    valid: { description: 'changed' },
    ifMatch: true,
  },
  { method: 'DELETE', path: '/api/v1/flags/{flag}', params: FLAG, operationId: 'deleteFlag', scope: 'admin', ifMatch: true },
  {
    method: 'PUT',
    path: '/api/v1/flags/{flag}/environments/{env}',
    params: FLAG,
    operationId: 'putFlagState',
    scope: 'admin',
    ifMatch: true,
    valid: { enabled: true, offVariant: 'off', targets: [{ variant: 'on', keys: ['u-1'] }], rules: [], fallthrough: { variant: 'on' } },
  },
  {
    method: 'POST',
    path: '/api/v1/flags/{flag}/environments/{env}/kill',
    params: FLAG,
    operationId: 'killFlag',
    scope: 'admin',
    valid: { reason: 'x' },
    optionalBody: true,
  },
  {
    method: 'POST',
    path: '/api/v1/flags/{flag}/environments/{env}/revive',
    params: FLAG,
    operationId: 'reviveFlag',
    scope: 'admin',
    valid: { reason: 'x' },
    optionalBody: true,
  },
  {
    method: 'POST',
    path: '/api/v1/environments/{env}/kill-all',
    params: { env: 'staging' },
    operationId: 'killAll',
    scope: 'admin',
    valid: { reason: 'x' },
    optionalBody: true,
  },
  {
    method: 'POST',
    path: '/api/v1/environments/{env}/revive-all',
    params: { env: 'production' },
    operationId: 'reviveAll',
    scope: 'admin',
    valid: { reason: 'x' },
    optionalBody: true,
  },
  {
    method: 'POST',
    path: '/api/v1/segments',
    params: {},
    operationId: 'createSegment',
    scope: 'admin',
    valid: { key: 'fz-seg-new', included: ['a'] },
  },
  {
    method: 'PUT',
    path: '/api/v1/segments/{segment}',
    params: { segment: 'fzs' },
    operationId: 'putSegment',
    scope: 'admin',
    valid: { included: ['b'], excluded: [], rules: [] },
    ifMatch: true,
  },
  { method: 'DELETE', path: '/api/v1/segments/{segment}', params: { segment: 'fzs' }, operationId: 'deleteSegment', scope: 'admin', ifMatch: true },
  {
    method: 'PUT',
    path: '/api/v1/flags/{flag}/environments/{env}/canary',
    params: FLAG,
    operationId: 'putCanary',
    scope: 'admin',
    valid: { control: 'off', canary: 'on', stages: [{ percent: 10 }] },
  },
  { method: 'DELETE', path: '/api/v1/flags/{flag}/environments/{env}/canary', params: FLAG, operationId: 'deleteCanary', scope: 'admin' },
  ...(['pause', 'resume', 'advance', 'rollback', 'promote'] as const).map(
    (action): WriteRoute => ({
      method: 'POST',
      path: `/api/v1/flags/{flag}/environments/{env}/canary/${action}`,
      params: FLAG,
      operationId: `${action}Canary`,
      scope: 'admin',
      valid: { reason: 'x' },
      optionalBody: true,
    }),
  ),
  { method: 'POST', path: '/api/v1/tokens', params: {}, operationId: 'createToken', scope: 'admin', valid: { kind: 'admin', name: 'fuzz' } },
  {
    method: 'DELETE',
    path: '/api/v1/tokens/{token}',
    params: { token: 'set-in-beforeAll' },
    operationId: 'deleteToken',
    scope: 'admin',
    valid: { reason: 'x' },
    optionalBody: true,
  },
  {
    method: 'POST',
    path: '/sdk/v1/metrics',
    params: {},
    operationId: 'sdkMetrics',
    scope: 'sdk',
    valid: { sdkId: 'fz', seq: 1, stats: [{ flag: 'fz', variant: 'on', minute, evaluations: 3, outcomes: 1, errors: 0 }] },
  },
];

/** Top-level properties a body schema declares (through `allOf` too), with their JSON types when simple. */
function declaredProperties(operationId: string): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  const visit = (s: JsonObject) => {
    for (const [name, p] of Object.entries((s.properties ?? {}) as Record<string, JsonObject>)) {
      out.set(name, typeof p.type === 'string' ? p.type : undefined);
    }
    for (const sub of (s.allOf ?? []) as JsonObject[]) visit(sub);
  };
  visit(bodySchema(operationId));
  return out;
}

/** A JSON value of none of the types a property allows. */
function wrongTypeValue(type: string): fc.Arbitrary<unknown> {
  const byType: Record<string, fc.Arbitrary<unknown>> = {
    string: fc.string({ maxLength: 20 }),
    number: fc.double({ noNaN: true, noDefaultInfinity: true }),
    boolean: fc.boolean(),
    array: fc.array(fc.integer(), { maxLength: 3 }),
    object: fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
  };
  const allowed = type === 'integer' || type === 'number' ? ['number'] : [type];
  return fc.oneof(
    ...Object.entries(byType)
      .filter(([t]) => !allowed.includes(t))
      .map(([, a]) => a),
  );
}

/** A path segment that can never be a key (and is not a dot segment the URL parser would resolve). */
const badKey = fc
  .oneof(
    fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }),
    fc.constantFrom('A', 'UPPER', 'a b', '-lead', 'x'.repeat(200), '%', '\u0000', 'ключ', '😀', 'a/b'),
  )
  .filter((s) => !KEY_PATTERN.test(s) && !/^\.+$/.test(s) && s.trim() !== '');

interface Attack {
  route: WriteRoute;
  what: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

let srv: TestServer;
let tokenForDelete: string;

function attackArb(): fc.Arbitrary<Attack> {
  return fc.constantFrom(...ROUTES).chain((route) => {
    const fill = (params: Record<string, string>) => route.path.replace(/\{(\w+)\}/g, (_, k: string) => encodeURIComponent(params[k]!));
    const params = route.params.token ? { ...route.params, token: tokenForDelete } : route.params;
    const goodAuth = route.scope === 'admin' ? srv.adminToken : srv.sdkKeys.production;
    const base = (what: string, extra: Partial<Attack> = {}): Attack => ({
      route,
      what,
      path: fill(params),
      headers: { authorization: `Bearer ${goodAuth}`, ...(route.valid ? { 'content-type': 'application/json' } : {}) },
      ...(route.valid ? { body: JSON.stringify(route.valid) } : {}),
      ...extra,
    });
    const attacks: fc.Arbitrary<Attack>[] = [];

    // Credentials: none, garbage, the other scope's token.
    attacks.push(
      fc
        .oneof(
          fc.constant(undefined),
          fc.string({ maxLength: 60 }).map((s) => `Bearer ${s}`),
          fc.string({ maxLength: 60 }),
          fc.constant(`Bearer ${route.scope === 'admin' ? srv.sdkKeys.production : srv.adminToken}`),
          fc.constant(`Basic ${Buffer.from(`admin:${srv.adminToken}`).toString('base64')}`),
        )
        .map((authorization) => {
          const a = base('auth');
          if (authorization === undefined) delete a.headers.authorization;
          else a.headers.authorization = authorization.replace(/[\r\n]/g, ' ');
          return a;
        }),
    );
    // Paths: each parameter replaced by something that cannot be a key.
    const names = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
    if (names.length > 0) {
      attacks.push(
        fc.tuple(fc.constantFrom(...names), badKey).map(([name, key]) => base(`path ${name}`, { path: fill({ ...params, [name]: key }) })),
      );
    }
    // If-Match that names no current version.
    if (route.ifMatch) {
      attacks.push(
        fc
          .oneof(fc.string({ maxLength: 30 }), fc.constantFrom('"r999"', '"v999"', 'W/"r1"x', '""', '"'))
          // Nothing that could name a current version (`*`, or r<n>/v<n> with or without quotes and W/).
          .filter((s) => s.trim() !== '' && !/[\r\n]/.test(s) && !s.split(',').some((t) => /^(W\/)?"?([rv]\d+|\*)"?$/.test(t.trim())))
          .map((ifMatch) => {
            const a = base('if-match');
            a.headers['if-match'] = ifMatch;
            return a;
          }),
      );
    }
    if (route.valid) {
      const props = declaredProperties(route.operationId);
      // An unknown property next to valid ones.
      attacks.push(
        fc
          .tuple(
            fc.string({ minLength: 1, maxLength: 20 }).filter((k) => !props.has(k) && k !== '__proto__'),
            fc.jsonValue({ maxDepth: 2 }),
          )
          .map(([k, v]) => base(`unknown property ${JSON.stringify(k)}`, { body: JSON.stringify({ ...route.valid, [k]: v ?? null }) })),
      );
      // A known property of the wrong type.
      const typed = [...props].filter((e): e is [string, string] => e[1] !== undefined);
      if (typed.length > 0) {
        attacks.push(
          fc
            .constantFrom(...typed)
            .chain(([k, t]) => wrongTypeValue(t).map((v) => base(`wrong type /${k}`, { body: JSON.stringify({ ...route.valid, [k]: v }) }))),
        );
      }
      // Not an object at all (a missing or `null` body is "no body" where the body is optional).
      const notObject: fc.Arbitrary<unknown>[] = [
        fc.integer(),
        fc.string({ maxLength: 10 }),
        fc.boolean(),
        fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }),
      ];
      if (!route.optionalBody) notObject.push(fc.constant(null));
      attacks.push(fc.oneof(...notObject).map((v) => base('not an object', { body: JSON.stringify(v) })));
      if (!route.optionalBody) {
        attacks.push(
          fc.constant(null).map(() => {
            const a = base('no body');
            delete a.body;
            delete a.headers['content-type'];
            return a;
          }),
        );
      }
      // Broken JSON: truncated, or with garbage after it.
      const text = JSON.stringify(route.valid);
      attacks.push(
        fc
          .oneof(
            // (An empty body is "no body", which the optional-body routes accept: incident-friendly `curl -X POST`.)
            fc.integer({ min: route.optionalBody ? 1 : 0, max: text.length - 1 }).map((n) => text.slice(0, n)),
            fc
              .string({ minLength: 1, maxLength: 5 })
              .filter((g) => g.trim() !== '')
              .map((g) => text + g),
            fc.constantFrom("{'single': 'quotes'}", '{"a":1,}', '[1,2', 'NaN', '{"a": undefined}'),
          )
          .map((body) => base('broken json', { body })),
      );
      // Prototype poisoning.
      attacks.push(fc.constant(base('__proto__', { body: `{"__proto__":{"admin":true},${text.slice(1)}` })));
      // A valid body with a content type the API does not speak.
      attacks.push(
        fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x').map((ct) => {
          const a = base(`content-type ${ct}`);
          a.headers['content-type'] = ct;
          return a;
        }),
      );
    }
    return fc.oneof(...attacks);
  });
}

/** Everything the server stores, except the informational last-used time of tokens. */
function fingerprint(): string {
  const sqlite = sqliteOf(srv.app);
  const tables = sqlite
    .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
    .all()
    .map((t) => t.name);
  const dump: Record<string, unknown[]> = {};
  for (const t of tables) {
    const rows = sqlite.prepare(`SELECT * FROM "${t}" ORDER BY rowid`).all() as Record<string, unknown>[];
    dump[t] = t === 'tokens' ? rows.map(({ last_used_at: _ignored, ...r }) => r) : rows;
  }
  return JSON.stringify(dump);
}

beforeAll(async () => {
  // The failed-authentication limit would soon answer every request with 429, which proves nothing about the routes.
  srv = await startServer({ authFailures: { limit: 1_000_000 } });
  const a = api(srv);
  expect((await a.post('/api/v1/flags', { key: 'fz', kind: 'boolean' })).status).toBe(201);
  expect((await a.put('/api/v1/flags/fz/environments/staging', { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } })).status).toBe(
    200,
  );
  expect((await a.post('/api/v1/segments', { key: 'fzs', included: ['u-1'] })).status).toBe(201);
  const token = await a.post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'to-revoke' });
  expect(token.status).toBe(201);
  tokenForDelete = token.body.id;
});
afterAll(async () => {
  await srv?.close();
});

describe('write routes under malformed input', () => {
  it('builds its attacks from bodies the spec accepts, so each attack is a near miss', async () => {
    const { Ajv2020 } = await import('ajv/dist/2020.js');
    const ajv = new Ajv2020({ strict: false });
    for (const r of ROUTES) if (r.valid) expect(ajv.validate(bodySchema(r.operationId), r.valid), r.operationId).toBe(true);
  });

  it('never answer 5xx, always answer a problem+json 4xx, and store nothing', async () => {
    const before = fingerprint();
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(attackArb(), async (attack) => {
        const res = await fetch(srv.url + attack.path, {
          method: attack.route.method,
          headers: attack.headers,
          ...(attack.body !== undefined ? { body: attack.body } : {}),
        });
        const text = await res.text();
        const where = `${attack.route.method} ${attack.path} (${attack.what}) → ${res.status} ${text.slice(0, 300)}`;
        expect(res.status, where).toBeGreaterThanOrEqual(400);
        expect(res.status, where).toBeLessThan(500);
        expect(res.headers.get('content-type'), where).toMatch(/^application\/problem\+json/);
        const problem = JSON.parse(text) as { type: string; status: number; errors?: { path: string; message: string }[] };
        expect(problem.status, where).toBe(res.status);
        expect(problem.type, where).toMatch(/^https:\/\/aviary\.dev\/problems\//);
        if (problem.type.endsWith('/validation')) {
          expect(problem.errors?.length, where).toBeGreaterThan(0);
          for (const e of problem.errors!) expect(typeof e.path === 'string' && typeof e.message === 'string', where).toBe(true);
        }
        const kind = `${attack.route.operationId}: ${attack.what.split(' ')[0]}`;
        seen.set(kind, (seen.get(kind) ?? 0) + 1);
      }),
      { numRuns: 300, interruptAfterTimeLimit: 20_000 },
    );
    expect(fingerprint()).toBe(before);
    // The run reached every route.
    const routesHit = new Set([...seen.keys()].map((k) => k.split(':')[0]));
    expect([...routesHit].sort()).toEqual([...new Set(ROUTES.map((r) => r.operationId))].sort());
  });
});
