/**
 * flag_usage on PostgreSQL: the ingest upsert keeps the earliest first and the latest last evaluation and adds the
 * counts (the SQL is written once for both engines), and the lifecycle reads it back.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { openPostgres } from '../../server/storage/postgres-port.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

const ADMIN = 'test-admin-token-lifecycle-pg-0123456789';
const SDK = 'test-sdk-key-lifecycle-pg-0123456789ab';
const DAY = 86_400_000;
const T0 = Date.parse('2026-03-02T10:00:00.000Z');
let t = T0;
let db: TestDatabase;
let app: FastifyInstance;
let url: string;

const call = async (method: string, path: string, token: string, body?: unknown) => {
  const r = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: r.status, body: (await r.json()) as any };
};

beforeAll(async () => {
  db = await createTestDatabase();
  app = await buildApp({ store: await openPostgres(db.url), adminToken: ADMIN, sdkKeys: { production: SDK }, now: () => t });
  await app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

it('keeps first, last and counts across reports and reads them back as a lifecycle', async () => {
  expect((await call('POST', '/api/v1/flags', ADMIN, { key: 'done', kind: 'boolean' })).status).toBe(201);
  const minute = (ms: number) => Math.floor(ms / 60_000) * 60_000;
  const report = (seq: number, at: number, evaluations: number) => ({
    sdkId: 'sdk-pg',
    seq,
    stats: [{ flag: 'done', variant: 'on', minute: minute(at), evaluations, reasons: {}, outcomes: 0, errors: 0 }],
  });
  t = T0 + 8 * DAY;
  expect((await call('POST', '/sdk/v1/metrics', SDK, report(1, t - 3 * 60_000, 5))).status).toBe(200);
  // Earlier minute (first moves back), then a later one (last moves on); the middle one moves neither.
  expect((await call('POST', '/sdk/v1/metrics', SDK, report(2, t - 20 * 3_600_000, 7))).status).toBe(200);
  expect((await call('POST', '/sdk/v1/metrics', SDK, report(3, t, 1))).status).toBe(200);
  expect((await call('POST', '/sdk/v1/metrics', SDK, report(4, t - 60 * 60_000, 1))).status).toBe(200);
  const rows = await app.store.all<{ first_evaluated_at: string; last_evaluated_at: string; evaluations: string }>(
    "SELECT first_evaluated_at, last_evaluated_at, evaluations FROM flag_usage WHERE flag = 'done'",
  );
  expect(rows.map((r) => [Number(r.first_evaluated_at), Number(r.last_evaluated_at), Number(r.evaluations)])).toEqual([
    [minute(t - 20 * 3_600_000), t, 14],
  ]);
  const flag = await call('GET', '/api/v1/flags/done', ADMIN);
  expect(flag.body.environments.production.lifecycle).toMatchObject({ status: 'active', lastEvaluatedAt: new Date(t).toISOString() });
});
