/** The flags-as-code apply on PostgreSQL: round trip to no changes, one transaction, all or nothing, 412 on a stale plan. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../server/app.js';
import { openPostgres } from '../../server/storage/postgres-port.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { api } from '../helpers/server.js';
import { auditCount, populate, versions } from './scenario.js';

const ADMIN = 'gitops-postgres-admin-token-0123456789';
let db: TestDatabase;
let app: FastifyInstance;
let a: ReturnType<typeof api>;

beforeAll(async () => {
  db = await createTestDatabase();
  app = await buildApp({ store: await openPostgres(db.url), adminToken: ADMIN });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  a = api({ url: `http://127.0.0.1:${address.port}`, adminToken: ADMIN });
  await populate(a);
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

it('export → apply changes nothing; an edit applies in one transaction; a bad entry or a stale plan changes nothing', async () => {
  const doc = (await a.get('/api/v1/export')).body;
  const before = { audit: await auditCount(a), versions: await versions(a) };
  const noop = await a.post('/api/v1/apply', { document: doc, reason: 'noop' });
  expect(noop.status).toBe(200);
  expect(noop.body.changes).toEqual([]);
  expect(await auditCount(a)).toBe(before.audit);
  expect(await versions(a)).toEqual(before.versions);

  const checkout = doc.flags.find((f: { key: string }) => f.key === 'checkout');
  checkout.environments.production.fallthrough = { variant: 'on' };
  checkout.environments.staging.targets = [{ variant: 'on', keys: ['pg'] }];
  const dry = await a.post('/api/v1/apply', { document: doc, dryRun: true });
  expect(dry.body.changes).toHaveLength(2);

  // A bad entry after the good ones: nothing.
  const bad = structuredClone(doc);
  bad.flags.find((f: { key: string }) => f.key === 'theme').environments.production.offVariant = 'missing';
  const refused = await a.post('/api/v1/apply', { document: bad, reason: 'bad' });
  expect(refused.status).toBe(400);
  expect(refused.body.detail).toContain('flag "theme" in "production"');
  expect(await versions(a)).toEqual(before.versions);

  // A concurrent edit of a touched state: 412, nothing.
  const staging = (await a.get('/api/v1/flags/checkout/environments/staging')).body;
  expect((await a.put('/api/v1/flags/checkout/environments/staging', { ...staging, targets: [{ variant: 'on', keys: ['x'] }] })).status).toBe(200);
  const moved = await versions(a);
  const stale = await a.post('/api/v1/apply', { document: doc, reason: 'stale' }, { headers: { 'if-match': `"${dry.body.fingerprint}"` } });
  expect(stale.status).toBe(412);
  expect(await versions(a)).toEqual(moved);

  const fresh = await a.post('/api/v1/apply', { document: doc, dryRun: true });
  const res = await a.post('/api/v1/apply', { document: doc, reason: 'pg' }, { headers: { 'if-match': `"${fresh.body.fingerprint}"` } });
  expect(res.status).toBe(200);
  expect(res.body.applied).toBe(true);
  const after = await versions(a);
  expect(after.production).toBe(moved.production! + 1);
  expect(after.staging).toBe(moved.staging! + 1);
  expect((await a.post('/api/v1/apply', { document: doc, dryRun: true })).body.changes).toEqual([]);
});
