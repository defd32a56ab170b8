/**
 * The role × operation matrix (CONTRACT §14), from the OpenAPI document, against the real server: every admin
 * operation, called by every role and by an editor and an oncall limited to one environment (inside it and outside
 * it). Allowed ⇒ not 403; refused ⇒ 403 problem `forbidden` naming the role needed, and nothing changed (the audit log
 * and every environment's version stay as they were). The declarations themselves are checked against §14 written
 * out independently below, and a route without a declaration fails at boot.
 */
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roleEnforcement } from '../../server/auth/role-hook.js';
import { decide, isAdminOperation, operationRules, ROLES, ruleOf, type Role } from '../../server/auth/roles.js';
import { loadSpec, type SpecOperation } from '../../server/openapi/spec.js';
import { api, request, sqliteOf, startServer, type TestServer } from '../helpers/server.js';

const spec = loadSpec();
const adminOperations = spec.operations.filter((op) => isAdminOperation(op, spec));

/** CONTRACT §14 written out: the writes each role may make (reads: every role). */
const ADMIN_ONLY = new Set([
  'createEnvironment',
  'updateEnvironment',
  'createToken',
  'deleteToken',
  'rotateToken',
  'createWebhook',
  'updateWebhook',
  'deleteWebhook',
  'testWebhook',
  'createTrigger',
  'deleteTrigger',
]);
const ONCALL_WRITES = new Set(['killFlag', 'reviveFlag', 'killAll', 'reviveAll', 'pauseCanary', 'rollbackCanary', 'revertFlagState']);
/** Writes that change what every environment shares (a scoped editor may not). */
const SHARED = new Set(['createFlag', 'updateFlag', 'deleteFlag', 'createSegment', 'putSegment', 'deleteSegment']);

function expectedRoles(op: SpecOperation): Role[] {
  if (op.method === 'get') return [...ROLES];
  if (ADMIN_ONLY.has(op.operationId)) return ['admin'];
  if (ONCALL_WRITES.has(op.operationId)) return ['admin', 'editor', 'oncall'];
  return ['admin', 'editor'];
}

describe('the declarations', () => {
  it('every admin operation declares its roles and where its environment is, as CONTRACT §14 says', () => {
    expect(adminOperations.length).toBeGreaterThan(50);
    for (const op of adminOperations) {
      const rule = ruleOf(op);
      expect([...rule.roles].sort(), op.operationId).toEqual(expectedRoles(op).sort());
      if (SHARED.has(op.operationId)) expect(rule.environment, op.operationId).toBe('none');
      if (op.method !== 'get' && op.path.includes('{env}')) expect(rule.environment, op.operationId).toBe('path');
      // The description says it too, in words.
      expect(String(op.operation.description), op.operationId).toContain('Roles: ');
    }
    expect([...operationRules().keys()].sort()).toEqual(adminOperations.map((o) => o.operationId).sort());
  });

  it('an operation without a declaration is refused', () => {
    const op = { ...adminOperations[0]!, operation: { operationId: 'x', responses: {} } };
    expect(() => ruleOf(op)).toThrow(/x-aviary-roles/);
    expect(() => ruleOf({ ...op, operation: { 'x-aviary-roles': ['viewer'], 'x-aviary-environment': 'none' } })).toThrow(/admin/);
    expect(() => ruleOf({ ...op, operation: { 'x-aviary-roles': ['admin'] } })).toThrow(/x-aviary-environment/);
  });

  it('a route the document does not declare fails at boot', async () => {
    const app = Fastify();
    // A declared route registers; an undeclared one makes the registration (so the boot) fail.
    const boot = async () =>
      app.register(
        async (admin) => {
          roleEnforcement(admin);
          admin.get('/flags', async () => ({}));
          admin.get('/not-in-the-spec', async () => ({}));
        },
        { prefix: '/api/v1' },
      );
    await expect(boot()).rejects.toThrow(/GET \/api\/v1\/not-in-the-spec: .*x-aviary-roles/);
    await app.close().catch(() => {});
    const fine = Fastify();
    await fine.register(
      async (admin) => {
        roleEnforcement(admin);
        admin.get('/flags', async () => ({}));
      },
      { prefix: '/api/v1' },
    );
    await fine.ready();
    expect(fine.hasRoute({ method: 'GET', url: '/api/v1/flags' })).toBe(true);
    await fine.close();
  });
});

interface Caller {
  label: string;
  role: Role;
  environments: string[] | null;
  token: string;
}

describe('the matrix against the real server', () => {
  let srv: TestServer;
  const callers: Caller[] = [];
  /** Change request id by environment. */
  const changeRequests: Record<string, string> = {};

  beforeAll(async () => {
    srv = await startServer();
    const a = api(srv);
    for (const [label, role, environments] of [
      ['admin', 'admin', null],
      ['editor', 'editor', null],
      ['oncall', 'oncall', null],
      ['viewer', 'viewer', null],
      ['editor@staging', 'editor', ['staging']],
      ['oncall@staging', 'oncall', ['staging']],
    ] as const) {
      const res = await a.post('/api/v1/tokens', { kind: 'admin', name: label, role, ...(environments ? { environments } : {}) });
      expect(res.status).toBe(201);
      callers.push({ label, role, environments: environments ? [...environments] : null, token: res.body.token });
    }
    expect((await a.post('/api/v1/flags', { key: 'mx', kind: 'boolean' })).status).toBe(201);
    expect((await a.post('/api/v1/segments', { key: 'mx-seg' })).status).toBe(201);
    // A pending change request in staging and one in production (their operations name no environment in the path).
    for (const env of ['staging', 'production']) {
      expect((await a.patch(`/api/v1/environments/${env}`, { requireApproval: true })).status).toBe(200);
      const held = await a.put(`/api/v1/flags/mx/environments/${env}`, {
        enabled: true,
        offVariant: 'off',
        targets: [],
        rules: [],
        fallthrough: { variant: 'on' },
      });
      expect(held.status).toBe(202);
      changeRequests[env] = held.body.id;
      expect((await a.patch(`/api/v1/environments/${env}`, { requireApproval: false })).status).toBe(200);
    }
  });
  afterAll(async () => srv?.close());

  /** What a refused request must not have changed. */
  const fingerprint = () => {
    const db = sqliteOf(srv.app);
    const audit = (db.prepare('SELECT count(*) AS n FROM audit_log').get() as { n: number }).n;
    const versions = db.prepare('SELECT key, version FROM environments ORDER BY key').all();
    return JSON.stringify({ audit, versions });
  };

  /** A concrete request for an operation: its path with parameters filled in, and a body. */
  function requestFor(op: SpecOperation, env: string): { path: string; body?: unknown } {
    const crEnv = op.path.startsWith('/api/v1/change-requests/{id}') ? env : null;
    const path = op.path
      .replace('{key}', op.operationId === 'deleteFlag' ? 'mx-doomed' : op.path.startsWith('/api/v1/segments') ? 'mx-seg' : 'mx')
      .replace('{env}', env)
      .replace('{id}', crEnv ? changeRequests[crEnv]! : 'no-such-id');
    if (op.operationId === 'deleteSegment') return { path: '/api/v1/segments/mx-doomed' };
    if (op.method === 'get' || op.method === 'delete') return { path };
    return { path, body: {} };
  }

  it('every operation × every role (and scoped roles inside and outside their environment)', async () => {
    let allowedCount = 0;
    let refusedCount = 0;
    for (const op of adminOperations) {
      const envs = op.path.includes('{env}') || op.path.startsWith('/api/v1/change-requests/{id}') ? ['staging', 'production'] : [null];
      for (const env of envs) {
        for (const caller of callers) {
          const { path, body } = requestFor(op, env ?? 'staging');
          const expected = decide(caller, op.operationId, env);
          // Independently of decide(): the role must be among those §14 gives, and a scoped caller's write must be in
          // its environment (and not a shared one).
          const independent =
            expectedRoles(op).includes(caller.role) &&
            (op.method === 'get' ||
              caller.environments === null ||
              (env !== null && caller.environments.includes(env) && !SHARED.has(op.operationId)));
          expect(expected.allowed, `${op.operationId} ${caller.label} ${env}`).toBe(independent);
          const before = expected.allowed ? '' : fingerprint();
          const res = await request(srv, op.method.toUpperCase(), path, { token: caller.token, ...(body !== undefined ? { body } : {}) });
          const what = `${op.method.toUpperCase()} ${path} as ${caller.label}: ${res.status} ${JSON.stringify(res.body)}`;
          expect(res.status, what).not.toBe(401);
          if (expected.allowed) {
            expect(res.status, what).not.toBe(403);
            allowedCount++;
          } else {
            expect(res.status, what).toBe(403);
            expect(res.headers.get('content-type'), what).toContain('application/problem+json');
            expect(res.body.type, what).toMatch(/forbidden$/);
            expect(res.body.detail, what).toMatch(/role|environment/);
            expect(fingerprint(), `${what}: nothing changed`).toBe(before);
            refusedCount++;
          }
        }
      }
    }
    // Both sides of the matrix were exercised, many times.
    expect(allowedCount).toBeGreaterThan(200);
    expect(refusedCount).toBeGreaterThan(100);
  });

  it('a refusal says which role is needed', async () => {
    const viewer = callers.find((c) => c.label === 'viewer')!;
    const res = await api(srv).post('/api/v1/flags/mx/environments/production/kill', undefined, { token: viewer.token });
    expect(res.status).toBe(403);
    expect(res.body.detail).toBe('Role "viewer" may not call killFlag; it needs one of the roles "admin", "editor", "oncall".');
    const scoped = callers.find((c) => c.label === 'oncall@staging')!;
    const out = await api(srv).post('/api/v1/flags/mx/environments/production/kill', undefined, { token: scoped.token });
    expect(out.status).toBe(403);
    expect(out.body.detail).toContain('"staging"');
    const inside = await api(srv).post('/api/v1/flags/mx/environments/staging/kill', undefined, { token: scoped.token });
    expect(inside.status).toBe(200);
  });
});
