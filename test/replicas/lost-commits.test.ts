/**
 * A PostgreSQL failover that loses the last commits leaves the database behind the versions replicas already served
 * to SDKs. Reusing those numbers for different changes would let an SDK take a new change for one it has: so the next
 * write (or, without one, the replica's poll) moves the environment's version past what was served, audited, and every
 * SDK resyncs from a snapshot.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createClient } from '@aviary/sdk';
import { buildApp } from '../../server/app.js';
import { openPostgres } from '../../server/storage/postgres-port.js';
import { createTestDatabase, withAdmin, type TestDatabase } from '../helpers/postgres.js';

const ADMIN = 'lost-commits-admin-token-0123456789';
const SDK = 'lost-commits-sdk-key-production-01';
let db: TestDatabase;
let app: FastifyInstance;
let url: string;

beforeAll(async () => {
  db = await createTestDatabase();
  app = await buildApp({ store: await openPostgres(db.url), adminToken: ADMIN, sdkKeys: { production: SDK }, replica: { pollMs: 200 } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

const call = (method: string, path: string, body?: unknown) =>
  fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** What a failover that lost the environment's last commit looks like: its change-log row and counter step gone. */
async function loseLastCommit(environment: string): Promise<number> {
  return withAdmin(db.url, async (sql) => {
    const [row] = await sql<{ version: string }[]>`SELECT version FROM environments WHERE key = ${environment}`;
    const version = Number(row!.version);
    await sql`DELETE FROM change_log WHERE environment = ${environment} AND version = ${version}`;
    await sql`UPDATE environments SET version = ${version - 1} WHERE key = ${environment}`;
    return version;
  });
}

describe('a database behind what was served', () => {
  it('the next write moves versions past what SDKs hold, and the SDKs resync to it', async () => {
    expect((await call('POST', '/api/v1/flags', { key: 'lost', kind: 'boolean' })).status).toBe(201);
    expect((await call('POST', '/api/v1/flags/lost/environments/production/revive', {})).status).toBe(200);
    const client = createClient({ baseUrl: url, sdkKey: SDK, flushIntervalMs: 0 });
    try {
      await client.ready();
      await until(() => client.variation('lost', { key: 'u' }, false), 'the SDK serves the flag on');
      const served = await loseLastCommit('production');
      expect(client.status().version).toBe(served);
      // A write right away: were its version `served` again, the SDK would think it had it already.
      const kill = await call('POST', '/api/v1/flags/lost/environments/production/kill', { reason: 'after the failover' });
      expect(kill.status).toBe(200);
      expect(kill.body.environmentVersion).toBeGreaterThan(served + 999);
      await until(() => client.variation('lost', { key: 'u' }, true) === false, 'the SDK applies the kill');
      expect(client.status().version).toBe(kill.body.environmentVersion);
      const audit = await call('GET', '/api/v1/audit?action=server.recover');
      expect(audit.body.entries.length).toBeGreaterThanOrEqual(1);
    } finally {
      client.close();
    }
  });

  it('without a write, the replica notices on its poll and moves the version itself', async () => {
    expect((await call('POST', '/api/v1/flags/lost/environments/staging/revive', {})).status).toBe(200);
    const served = app.snapshots.version('staging')!;
    expect(await loseLastCommit('staging')).toBe(served);
    await until(() => app.snapshots.version('staging')! > served + 999, 'the version moved past what was served');
    const audit = await call('GET', '/api/v1/audit?action=server.recover&environment=staging');
    expect(audit.body.entries).toHaveLength(1);
    expect(audit.body.entries[0]).toMatchObject({ actor: { name: 'system' }, after: { served } });
    // Writes go on from there.
    const kill = await call('POST', '/api/v1/flags/lost/environments/staging/kill', {});
    expect(kill.body.environmentVersion).toBe(app.snapshots.version('staging'));
  });
});
