/**
 * PostgreSQL stops mid-run (CONTRACT §9): writes answer 503 with Retry-After within AVIARY_DB_TIMEOUT_MS and change
 * nothing, /readyz turns 503, connected SDKs keep serving, and when the database is back every replica catches up by
 * itself. A private embedded PostgreSQL (stopping the run's shared one would break other files).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@aviary/sdk';
import { startEmbeddedPostgres, type EmbeddedPostgresServer, type TestDatabase } from '../helpers/postgres.js';
import { call, startReplica, until } from '../helpers/replicas.js';
import { PROCESS_SDK_KEY, type ServerProcess } from '../stream/server-process.js';

let pg: EmbeddedPostgresServer;
let db: TestDatabase;
const replicas: ServerProcess[] = [];

beforeAll(async () => {
  pg = await startEmbeddedPostgres();
  db = await pg.createDatabase();
});
afterAll(async () => {
  for (const r of replicas) if (r.child.exitCode === null) await r.crash();
  await pg?.dispose();
});

async function replica(host: string): Promise<ServerProcess> {
  const r = await startReplica(db.url, host, { AVIARY_DB_TIMEOUT_MS: '1000' });
  replicas.push(r);
  return r;
}

describe('PostgreSQL outage', () => {
  it('writes answer 503 quickly and change nothing, SDKs keep serving, and every replica catches up when it returns', async () => {
    const [a, b] = await Promise.all([replica('127.0.0.6'), replica('127.0.0.7')]);
    expect((await call(a.url, 'POST', '/api/v1/flags', { key: 'checkout', kind: 'boolean' })).status).toBe(201);
    expect((await call(a.url, 'POST', '/api/v1/flags/checkout/environments/production/revive', {})).status).toBe(200);
    const client = createClient({ baseUrl: a.url, sdkKey: PROCESS_SDK_KEY, flushIntervalMs: 0, backoff: { initialMs: 100, maxMs: 500 } });
    try {
      await client.ready();
      await until(() => client.variation('checkout', { key: 'u' }, false), 'the SDK serves the flag on');

      await pg.stop();
      const started = Date.now();
      const refused = await call(a.url, 'POST', '/api/v1/flags/checkout/environments/production/kill', { reason: 'during the outage' });
      const tookMs = Date.now() - started;
      expect(refused.status).toBe(503);
      expect(refused.headers.get('content-type')).toContain('application/problem+json');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(tookMs).toBeLessThan(1000 + 1500);
      expect((await call(b.url, 'POST', '/api/v1/flags', { key: 'other', kind: 'boolean' })).status).toBe(503);
      const ready = await call(a.url, 'GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks).toMatchObject({ database: 'unreachable' });
      // SDKs keep serving what they have; the SDK API answers from the replica's memory.
      expect(client.variation('checkout', { key: 'u' }, false)).toBe(true);
      const snapshot = await fetch(`${b.url}/sdk/v1/flags`, { headers: { authorization: `Bearer ${PROCESS_SDK_KEY}` } });
      expect(snapshot.status).toBe(200);
      expect(
        ((await snapshot.json()) as { flags: { key: string; state: { enabled: boolean } }[] }).flags.find((f) => f.key === 'checkout')?.state.enabled,
      ).toBe(true);

      await pg.start();
      await until(async () => (await call(a.url, 'GET', '/readyz')).status === 200, 'replica A ready again');
      await until(async () => (await call(b.url, 'GET', '/readyz')).status === 200, 'replica B ready again');
      // A write through B reaches the SDK on A: A listens again and follows the log by itself.
      const kill = await call(b.url, 'POST', '/api/v1/flags/checkout/environments/production/kill', { reason: 'after the outage' });
      expect(kill.status).toBe(200);
      await until(() => client.variation('checkout', { key: 'u' }, true) === false, 'the kill reaches the SDK on A');
      // The refused writes left nothing behind.
      const audit = await call(a.url, 'GET', '/api/v1/audit?flag=checkout&action=flag.kill');
      expect(audit.body.entries.map((e: { reason: string }) => e.reason)).toEqual(['after the outage']);
      expect((await call(a.url, 'GET', '/api/v1/flags/other')).status).toBe(404);
    } finally {
      client.close();
    }
  });
});
