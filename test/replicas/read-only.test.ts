/**
 * AVIARY_DATABASE_URL reaching a read-only database (a standby after a failover, a stale DNS name): the replica is not
 * ready, writes answer 503 with Retry-After (not 500), SDKs keep being served, and it recovers when writes are possible.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../server/app.js';
import { openPostgres } from '../../server/storage/postgres-port.js';
import { createTestDatabase, withAdmin, type TestDatabase } from '../helpers/postgres.js';

const ADMIN = 'read-only-admin-token-0123456789';
const SDK = 'read-only-sdk-key-production-0123';
let db: TestDatabase;
let app: FastifyInstance;

beforeAll(async () => {
  db = await createTestDatabase();
  app = await buildApp({ store: await openPostgres(db.url, { timeoutMs: 1000 }), adminToken: ADMIN, sdkKeys: { production: SDK } });
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

/** Makes every new session of the database read-only (or writable again) and ends the app's current sessions. */
async function readOnly(on: boolean): Promise<void> {
  const name = new URL(db.url).pathname.slice(1);
  await withAdmin(db.url, async (sql) => {
    await sql.unsafe('SET default_transaction_read_only = off');
    await sql.unsafe(`ALTER DATABASE "${name}" SET default_transaction_read_only = ${on ? 'on' : 'off'}`);
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${name} AND pid <> pg_backend_pid()`;
  });
}

describe('a read-only database', () => {
  it('is not ready, refuses writes with 503, keeps serving SDKs, and recovers', async () => {
    const inject = (method: 'GET' | 'POST', url: string, token?: string, payload?: Record<string, unknown>) =>
      app.inject({ method, url, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}), ...(payload !== undefined ? { payload } : {}) });
    expect((await inject('POST', '/api/v1/flags', ADMIN, { key: 'ro', kind: 'boolean' })).statusCode).toBe(201);
    await readOnly(true);
    try {
      // (The sessions it had were ended: the first answers may say the database went away, then what it is now.)
      let ready = await inject('GET', '/readyz');
      for (let i = 0; i < 30 && ready.json().checks?.database !== 'read-only'; i++) {
        await new Promise((r) => setTimeout(r, 100));
        ready = await inject('GET', '/readyz');
      }
      expect(ready.statusCode).toBe(503);
      expect(ready.json().checks).toEqual({ database: 'read-only' });
      const write = await inject('POST', '/api/v1/flags/ro/environments/production/revive', ADMIN, {});
      expect(write.statusCode).toBe(503);
      expect(write.headers['retry-after']).toBeDefined();
      expect(write.headers['content-type']).toContain('application/problem+json');
      const flags = await inject('GET', '/sdk/v1/flags', SDK);
      expect(flags.statusCode).toBe(200);
      expect(flags.json().flags.map((f: { key: string }) => f.key)).toContain('ro');
    } finally {
      await readOnly(false);
    }
    let ready = await inject('GET', '/readyz');
    for (let i = 0; i < 50 && ready.statusCode !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      ready = await inject('GET', '/readyz');
    }
    expect(ready.statusCode).toBe(200);
    const revived = await inject('POST', '/api/v1/flags/ro/environments/production/revive', ADMIN, {});
    expect(revived.statusCode).toBe(200);
    expect(revived.json().changed).toBe(true);
  });
});
