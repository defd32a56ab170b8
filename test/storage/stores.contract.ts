/**
 * The store contract: what every store promises, whatever the database. `storeContract` runs the same tests against
 * an app built on each adapter (stores.sqlite.test.ts, stores.postgres.test.ts): real stores, real writer, real
 * database, no HTTP in between.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../server/storage/writer.js';

const OPERATOR: Actor = { tokenId: null, name: 'contract' };
const variants = [
  { key: 'on', value: true },
  { key: 'off', value: false },
];

export function storeContract(name: string, start: () => Promise<{ app: FastifyInstance; close(): Promise<void> }>): void {
  describe(`store contract: ${name}`, () => {
    let app: FastifyInstance;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ app, close } = await start());
    });
    afterAll(async () => {
      await close?.();
    });

    it('flag definitions: create with a default state everywhere, patch under a precondition, archive; audited', async () => {
      const { flags, states, audit } = app.stores;
      const created = await flags.create(OPERATOR, { key: 'contract-flag', kind: 'boolean', variants, tags: ['t'] });
      expect(created).toMatchObject({ key: 'contract-flag', revision: 1, archived: false, tags: ['t'] });
      expect(Object.keys(created.environments).sort()).toEqual(['development', 'production', 'staging']);
      await expect(flags.create(OPERATOR, { key: 'contract-flag', kind: 'boolean', variants })).rejects.toMatchObject({
        name: 'StoreError',
        kind: 'conflict',
      });
      const refused = new Error('stale');
      await expect(
        flags.patch(OPERATOR, 'contract-flag', { description: 'x' }, (current) => {
          if (current !== 7) throw refused;
        }),
      ).rejects.toBe(refused);
      expect((await flags.get('contract-flag'))!.description).toBe('');
      const patched = await flags.patch(OPERATOR, 'contract-flag', { description: 'checked' }, (current) => expect(current).toBe(1));
      expect(patched).toMatchObject({ revision: 2, description: 'checked' });
      expect((await flags.list({ q: 'CHECKED' })).map((f) => f.key)).toEqual(['contract-flag']);
      expect((await flags.list({ tag: 't', environment: 'production', enabled: false })).map((f) => f.key)).toEqual(['contract-flag']);
      const archived = await flags.archive(OPERATOR, 'contract-flag');
      expect(archived.archived).toBe(true);
      expect((await flags.list()).map((f) => f.key)).not.toContain('contract-flag');
      expect((await flags.list({ archived: 'all' })).map((f) => f.key)).toContain('contract-flag');
      await expect(states.kill(OPERATOR, 'production', 'contract-flag', null)).rejects.toMatchObject({ name: 'StoreError', kind: 'conflict' });
      const entries = (await audit.list({ flag: 'contract-flag' })).entries.map((e) => e.action);
      expect(entries).toEqual(['flag.archive', 'flag.update', 'flag.create']);
    });

    it('flag state: kill and revive are idempotent, bump the version once each, and reach the live state and the change log', async () => {
      const { flags, states } = app.stores;
      await flags.create(OPERATOR, { key: 'switch', kind: 'boolean', variants });
      const before = app.snapshots.version('production')!;
      const on = await states.revive(OPERATOR, 'production', 'switch', 'on');
      expect(on).toMatchObject({ changed: true, environmentVersion: before + 1 });
      expect(await states.revive(OPERATOR, 'production', 'switch', 'again')).toMatchObject({ changed: false, environmentVersion: before + 1 });
      const off = await states.kill(OPERATOR, 'production', 'switch', 'incident');
      expect(off).toMatchObject({ changed: true, environmentVersion: before + 2 });
      expect(off.state).toMatchObject({ enabled: false, killReason: 'incident' });
      expect(off.state.killedAt).not.toBeNull();
      expect(app.snapshots.version('production')).toBe(before + 2);
      expect(app.snapshots.get('production')!.flags.find((f) => f.key === 'switch')!.state.enabled).toBe(false);
      const deltas = app.snapshots.changesSince('production', before)!;
      expect(deltas.map((d) => d.version)).toEqual([before + 1, before + 2]);
      expect(deltas[1]!.changes).toEqual([{ type: 'flag.upsert', flag: expect.objectContaining({ key: 'switch' }) }]);
      // The precondition sees the state's version, inside the write.
      await expect(
        states.putState(
          OPERATOR,
          'production',
          'switch',
          { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } },
          (v) => {
            if (v !== 1) throw new Error(`state version ${v}`);
          },
        ),
      ).rejects.toThrow('state version 3');
      expect((await states.getState('production', 'switch'))!.version).toBe(3);
    });

    it('the panic button: kill-all saves each state and revive-all restores it exactly, in one version each', async () => {
      const { flags, states } = app.stores;
      for (const key of ['p1', 'p2', 'p3']) await flags.create(OPERATOR, { key, kind: 'boolean', variants });
      await states.revive(OPERATOR, 'staging', 'p1', null);
      await states.revive(OPERATOR, 'staging', 'p2', null);
      const before = app.snapshots.version('staging')!;
      const killed = await states.killAll(OPERATOR, 'staging', { reason: 'panic', except: ['p2'] });
      expect(killed).toMatchObject({ killed: ['p1'], spared: ['p2'], environmentVersion: before + 1 });
      expect((await states.getState('staging', 'p1'))!).toMatchObject({ enabled: false, panicked: true });
      const revived = await states.reviveAll(OPERATOR, 'staging', 'over');
      expect(revived).toMatchObject({ revived: ['p1'], environmentVersion: before + 2 });
      expect((await states.getState('staging', 'p1'))!).toMatchObject({ enabled: true, panicked: false, killedAt: null });
      expect((await states.getState('staging', 'p3'))!.enabled).toBe(false);
    });

    it('segments: create, replace under a precondition, refuse to delete one in use, delete', async () => {
      const { flags, states, segments } = app.stores;
      await segments.create(OPERATOR, { key: 'beta', included: ['u1'], excluded: [], rules: [] });
      const replaced = await segments.put(OPERATOR, 'beta', { key: 'beta', included: ['u1', 'u2'], excluded: [], rules: [] }, (r) =>
        expect(r).toBe(1),
      );
      expect(replaced).toMatchObject({ created: false, segment: { revision: 2, included: ['u1', 'u2'] } });
      await flags.create(OPERATOR, { key: 'uses-beta', kind: 'boolean', variants });
      await states.putState(OPERATOR, 'production', 'uses-beta', {
        enabled: true,
        offVariant: 'off',
        targets: [],
        rules: [{ id: 'r1', conditions: [{ segment: 'beta' }], serve: { variant: 'on' } }],
        fallthrough: { variant: 'off' },
      });
      await expect(segments.delete(OPERATOR, 'beta')).rejects.toMatchObject({
        name: 'StoreError',
        kind: 'in-use',
        details: { flags: ['uses-beta'] },
      });
      await states.putState(OPERATOR, 'production', 'uses-beta', {
        enabled: true,
        offVariant: 'off',
        targets: [],
        rules: [],
        fallthrough: { variant: 'off' },
      });
      await segments.delete(OPERATOR, 'beta');
      expect(await segments.get('beta')).toBeNull();
      expect(app.snapshots.get('production')!.segments.map((s) => s.key)).not.toContain('beta');
    });

    it('tokens: the secret is shown once and stored hashed; revocation takes effect at once', async () => {
      const { tokens } = app.stores;
      const created = await tokens.create(OPERATOR, { kind: 'sdk', environment: 'production', name: 'contract', clientSide: true });
      expect(created.token).toMatch(/^avi_sdk_/);
      expect(tokens.authenticate(created.token)).toMatchObject({ id: created.id, clientSide: true, environment: 'production' });
      expect((await tokens.get(created.id))!).not.toHaveProperty('token');
      await tokens.revoke(OPERATOR, created.id, 'leaked');
      expect(tokens.authenticate(created.token)).toBeNull();
      expect(tokens.isRevoked(created.token)).toBe(true);
      expect((await tokens.get(created.id))!.revokedAt).not.toBeNull();
    });

    it('environments: a new one gets every flag in its default state and is loaded into the live state', async () => {
      const { environments } = app.stores;
      const env = await environments.create(OPERATOR, { key: 'eu-west', name: 'EU West' });
      expect(env).toMatchObject({ key: 'eu-west', version: 0 });
      expect(await environments.create(OPERATOR, { key: 'eu-west', name: 'again' })).toBeNull();
      expect((await environments.list()).map((e) => e.key)).toEqual(['development', 'staging', 'production', 'eu-west']);
      expect(app.snapshots.get('eu-west')!.flags.map((f) => f.key)).toContain('switch');
    });

    it('the audit log pages newest first with a cursor', async () => {
      const first = await app.stores.audit.list({ limit: 2 });
      expect(first.entries).toHaveLength(2);
      expect(first.entries[0]!.id).toBeGreaterThan(first.entries[1]!.id);
      const second = await app.stores.audit.list({ limit: 2, cursor: first.entries[1]!.id });
      expect(second.entries[0]!.id).toBeLessThan(first.entries[1]!.id);
    });

    it('a write that throws leaves nothing behind: no rows, no audit entry, no version', async () => {
      const before = app.snapshots.version('production');
      const entries = (await app.stores.audit.list({ limit: 1 })).entries[0]!.id;
      await expect(
        app.writer.write(OPERATOR, async (w) => {
          await w.tx.run('UPDATE flags SET description = ? WHERE key = ?', ['half', 'switch']);
          w.audit({ action: 'test.half', resourceType: 'flag', resourceKey: 'switch' });
          w.touchFlag('switch');
          throw new Error('changed my mind');
        }),
      ).rejects.toThrow('changed my mind');
      expect((await app.stores.flags.get('switch'))!.description).toBe('');
      expect((await app.stores.audit.list({ limit: 1 })).entries[0]!.id).toBe(entries);
      expect(app.snapshots.version('production')).toBe(before);
    });

    describe('prerequisites (CONTRACT §12)', () => {
      const st = (prerequisites: { flag: string; variants: string[] }[] = []) => ({
        enabled: true,
        offVariant: 'off',
        ...(prerequisites.length ? { prerequisites } : {}),
        targets: [],
        rules: [],
        fallthrough: { variant: 'on' },
      });

      it('stores them, refuses cycles per environment and missing flags, refuses archiving a required flag', async () => {
        const { flags, states } = app.stores;
        for (const key of ['pq-parent', 'pq-child']) await flags.create(OPERATOR, { key, kind: 'boolean', variants });
        const put = await states.putState(OPERATOR, 'production', 'pq-child', st([{ flag: 'pq-parent', variants: ['on'] }]));
        expect(put.state.prerequisites).toEqual([{ flag: 'pq-parent', variants: ['on'] }]);
        expect(app.snapshots.get('production')!.flags.find((f) => f.key === 'pq-child')!.state.prerequisites).toEqual([
          { flag: 'pq-parent', variants: ['on'] },
        ]);
        await expect(states.putState(OPERATOR, 'production', 'pq-parent', st([{ flag: 'pq-child', variants: ['on'] }]))).rejects.toMatchObject({
          name: 'StoreError',
          kind: 'invalid',
          issues: [{ path: '/prerequisites/0/flag', message: 'would create a cycle: pq-parent → pq-child → pq-parent' }],
        });
        // The same edge is no cycle in an environment where the child requires nothing.
        await states.putState(OPERATOR, 'staging', 'pq-parent', st([{ flag: 'pq-child', variants: ['on'] }]));
        await expect(states.putState(OPERATOR, 'production', 'pq-parent', st([{ flag: 'pq-nope', variants: ['on'] }]))).rejects.toMatchObject({
          kind: 'invalid',
          issues: [{ path: '/prerequisites/0/flag' }],
        });
        await expect(flags.archive(OPERATOR, 'pq-parent')).rejects.toMatchObject({ kind: 'in-use', details: { flags: ['pq-child'] } });
        await expect(flags.archive(OPERATOR, 'pq-child')).rejects.toMatchObject({ kind: 'in-use', details: { flags: ['pq-parent'] } });
        // A kill keeps them (the state is rewritten whole).
        await states.kill(OPERATOR, 'production', 'pq-child', null);
        expect((await states.getState('production', 'pq-child'))!.prerequisites).toEqual([{ flag: 'pq-parent', variants: ['on'] }]);
      });
    });
  });
}
