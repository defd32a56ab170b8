/**
 * One owner per background duty (CONTRACT §9): the replica holding the canary guard's lease is SIGKILLed while a
 * regressing canary runs; another replica takes the lease over within seconds and rolls the canary back, once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { seededRandom } from '../../server/canary/simulation.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { call, startReplica } from '../helpers/replicas.js';
import { PROCESS_SDK_KEY, type ServerProcess } from '../stream/server-process.js';

let db: TestDatabase;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await db?.drop();
});

async function replica(host: string): Promise<ServerProcess> {
  const r = await startReplica(db.url, host);
  cleanups.push(() => (r.child.exitCode === null ? r.crash() : undefined));
  return r;
}

/** Whether the replica owns the canary guard now (its /metrics says so). */
async function ownsGuard(r: ServerProcess): Promise<boolean> {
  const text = await (await fetch(`${r.url}/metrics`)).text();
  return /^aviary_background_duty\{duty="canary-guard"\} 1$/m.test(text);
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('canary guard on replicas', () => {
  it('the guard owner dies mid-canary; another replica takes over and rolls the regressing canary back', async () => {
    const [a, b] = await Promise.all([replica('127.0.0.8'), replica('127.0.0.9')]);
    const owners = await until('one guard owner', async () => {
      const o = [(await ownsGuard(a)) ? a : null, (await ownsGuard(b)) ? b : null].filter((r) => r !== null);
      return o.length === 1 ? o : undefined;
    });
    const owner = owners[0]!;
    const survivor = owner === a ? b : a;
    expect(await ownsGuard(survivor)).toBe(false);

    expect((await call(survivor.url, 'POST', '/api/v1/flags', { key: 'checkout', kind: 'boolean' })).status).toBe(201);
    const base = { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'off' } };
    expect((await call(survivor.url, 'PUT', '/api/v1/flags/checkout/environments/production', base)).status).toBe(200);
    const canaryPath = '/api/v1/flags/checkout/environments/production/canary';
    const started = await call(owner.url, 'PUT', canaryPath, {
      control: 'off',
      canary: 'on',
      stages: [{ percent: 50 }, { percent: 100 }],
      stageDurationSeconds: 3600,
    });
    expect(started.status).toBe(201);

    const clients: AviaryClient[] = [];
    for (let i = 0; i < 2; i++) {
      const c = createClient({ baseUrl: survivor.url, sdkKey: PROCESS_SDK_KEY, flushIntervalMs: 0, backoff: { initialMs: 100, maxMs: 500 } });
      cleanups.push(() => c.close());
      await c.ready();
      clients.push(c);
    }
    const users = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    await until('the 50% rollout', () => clients.every((c) => users(200, 'probe').some((key) => c.variation('checkout', { key }, false))));

    // The owner dies while the canary runs; the survivor gets the evidence and must take the guard over.
    await owner.crash();
    const diedAt = Date.now();
    const rng = seededRandom(11);
    const model = { on: { error: 0.05, ms: 20 }, off: { error: 0.01, ms: 20 } };
    let round = 0;
    const rolledBack = await until(
      'the rollback by the new owner',
      async () => {
        for (const [i, c] of clients.entries()) {
          for (const key of users(500, `r${round}-${i}`)) {
            const on = c.variation('checkout', { key }, false);
            const m = on ? model.on : model.off;
            c.track('checkout', { key }, { error: rng() < m.error, latencyMs: m.ms });
          }
          await c.flush();
        }
        round++;
        const s = (await call(survivor.url, 'GET', canaryPath)).body;
        return s.state === 'rolled_back' ? s : undefined;
      },
      30_000,
    );
    expect(rolledBack.state).toBe('rolled_back');
    expect(await ownsGuard(survivor)).toBe(true);
    // Taken over within the lease (5 s) plus a renewal (1 s) plus what the statistics needed.
    expect(Date.now() - diedAt).toBeLessThan(30_000);
    // Rolled back once, by the guard, with its evidence in the audit log.
    const audit = await call(survivor.url, 'GET', '/api/v1/audit?flag=checkout&action=canary.rollback');
    expect(audit.body.entries).toHaveLength(1);
    expect(audit.body.entries[0]).toMatchObject({ actor: { tokenId: null, name: 'canary-guard' } });
    // The SDKs switched to control.
    await until('control everywhere', () => clients.every((c) => users(200, 'after').every((key) => !c.variation('checkout', { key }, true))));
  });
});
