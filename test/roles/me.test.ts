/** `GET /api/v1/me` and tokens with a role (CONTRACT §14). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { operationRules } from '../../server/auth/roles.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer();
});
afterAll(async () => srv?.close());

describe('GET /api/v1/me', () => {
  it('an admin token may call every admin operation', async () => {
    const me = await api(srv).get('/api/v1/me');
    expect(me.status).toBe(200);
    expect(me.body.role).toBe('admin');
    expect(me.body.environments).toBeNull();
    expect(me.body.actor).toMatchObject({ kind: 'token', name: 'AVIARY_ADMIN_TOKEN', tokenId: 'configured-admin' });
    expect(me.body.operations).toEqual([...operationRules().keys()].sort());
  });

  it('a scoped oncall token lists its role, environments and the operations it may call', async () => {
    const created = await api(srv).post('/api/v1/tokens', { kind: 'admin', role: 'oncall', environments: ['production'], name: 'pager' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ kind: 'admin', role: 'oncall', environments: ['production'], expiresAt: null, replacedBy: null });
    const me = await api(srv).get('/api/v1/me', { token: created.body.token });
    expect(me.status).toBe(200);
    expect(me.body.role).toBe('oncall');
    expect(me.body.environments).toEqual(['production']);
    expect(me.body.operations).toContain('killFlag');
    expect(me.body.operations).toContain('killAll');
    expect(me.body.operations).toContain('revertFlagState');
    expect(me.body.operations).toContain('listFlags');
    expect(me.body.operations).not.toContain('putFlagState');
    expect(me.body.operations).not.toContain('createFlag');
    expect(me.body.operations).not.toContain('createToken');
  });

  it('a viewer may read and change nothing', async () => {
    const created = await api(srv).post('/api/v1/tokens', { kind: 'admin', role: 'viewer', name: 'dashboards' });
    const me = await api(srv).get('/api/v1/me', { token: created.body.token });
    for (const id of me.body.operations as string[]) expect(operationRules().get(id)!.read, id).toBe(true);
    const refused = await api(srv).post('/api/v1/flags', { key: 'nope', type: 'boolean' }, { token: created.body.token });
    expect(refused.status).toBe(403);
    expect(refused.body.type).toMatch(/forbidden$/);
    expect(refused.body.detail).toContain('"viewer"');
    expect(refused.body.detail).toContain('"editor"');
  });
});
