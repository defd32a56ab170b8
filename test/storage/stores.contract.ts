/**
 * The store contract: what every store promises, whatever the database. `storeContract` runs the same tests against
 * an app built on each adapter (stores.sqlite.test.ts, stores.postgres.test.ts): real stores, real writer, real
 * database, no HTTP in between.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../server/storage/writer.js';
import { csrfMatches, LOGIN_TTL_MS, SessionStore, sessionActor } from '../../server/oidc/session-store.js';

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

  describe(`store contract: ${name}: scheduled changes`, () => {
    let app: FastifyInstance;
    let close: () => Promise<void>;
    // The app is never made ready here, so its runner does not start: these tests drive `run` themselves.
    const noFence = async () => {};
    beforeAll(async () => {
      ({ app, close } = await start());
      await app.stores.flags.create(OPERATOR, { key: 'sched', kind: 'boolean', variants });
      await app.stores.states.revive(OPERATOR, 'production', 'sched', null);
    });
    afterAll(async () => {
      await close?.();
    });

    it('create validates (flag, environment, time, state like a PUT), lists soonest first, audits; nothing is created on refusal', async () => {
      const { store } = app.schedules;
      const now = Date.now();
      await expect(store.create(OPERATOR, 'production', 'missing', { at: now + 60_000, action: 'kill' })).rejects.toMatchObject({
        kind: 'not-found',
      });
      await expect(store.create(OPERATOR, 'nowhere', 'sched', { at: now + 60_000, action: 'kill' })).rejects.toMatchObject({ kind: 'not-found' });
      await expect(store.create(OPERATOR, 'production', 'sched', { at: now - 3_600_000, action: 'kill' })).rejects.toMatchObject({
        kind: 'invalid',
        issues: [{ path: '/at' }],
      });
      await expect(
        store.create(OPERATOR, 'production', 'sched', {
          at: now + 60_000,
          action: 'state',
          state: { enabled: true, offVariant: 'x', fallthrough: { variant: 'on' } },
        }),
      ).rejects.toMatchObject({ kind: 'invalid', issues: [{ path: '/state/offVariant' }] });
      expect(await store.list('production', 'sched')).toEqual([]);
      const later = await store.create(OPERATOR, 'production', 'sched', { at: now + 120_000, action: 'revive' });
      const sooner = await store.create(OPERATOR, 'production', 'sched', {
        at: now + 60_000,
        action: 'state',
        state: { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' }, version: 99 },
        reason: 'r',
      });
      expect(sooner).toMatchObject({ status: 'pending', action: 'state', reason: 'r', author: OPERATOR, ranAt: null, error: null });
      expect(sooner.state).toEqual({ enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } });
      expect((await store.list('production', 'sched')).map((s) => s.id)).toEqual([sooner.id, later.id]);
      expect(await store.get('production', 'sched', sooner.id)).toEqual(sooner);
      expect(await store.get('staging', 'sched', sooner.id)).toBeNull();
      expect(await store.nextAt()).toBe(Date.parse(sooner.at));
      const cancelled = await store.cancel(OPERATOR, 'production', 'sched', later.id);
      expect(cancelled.status).toBe('cancelled');
      await expect(store.cancel(OPERATOR, 'production', 'sched', later.id)).rejects.toMatchObject({ kind: 'conflict' });
      await store.cancel(OPERATOR, 'production', 'sched', sooner.id);
      const actions = (await app.stores.audit.list({ flag: 'sched' })).entries.map((e) => e.action);
      expect(actions.filter((a) => a === 'schedule.create')).toHaveLength(2);
      expect(actions.filter((a) => a === 'schedule.cancel')).toHaveLength(2);
    });

    it('a due schedule runs once: concurrent runs apply it once, a failed fence changes nothing, a refused action ends failed', async () => {
      const { store } = app.schedules;
      const s = await store.create(OPERATOR, 'production', 'sched', { at: Date.now(), action: 'kill', reason: 'due' });
      expect(await store.due(Date.now())).toContain(s.id);
      const before = app.snapshots.version('production')!;
      const lost = new Error('lease lost');
      await expect(
        store.run(s.id, async () => {
          throw lost;
        }),
      ).rejects.toBe(lost);
      expect((await store.get('production', 'sched', s.id))!.status).toBe('pending');
      expect(app.snapshots.version('production')).toBe(before);
      const outcomes = await Promise.all([store.run(s.id, noFence), store.run(s.id, noFence), store.run(s.id, noFence)]);
      expect(outcomes.map((o) => o.outcome).sort()).toEqual(['done', 'skipped', 'skipped']);
      expect(app.snapshots.version('production')).toBe(before + 1);
      expect((await app.stores.states.getState('production', 'sched'))!.enabled).toBe(false);
      expect(await store.due(Date.now())).not.toContain(s.id);
      const kills = (await app.stores.audit.list({ flag: 'sched' })).entries.filter((e) => e.action === 'flag.kill');
      expect(kills).toHaveLength(1);
      expect(kills[0]!.actor).toEqual({ tokenId: null, name: `schedule:${s.id}`, kind: 'schedule', subject: null, email: null });

      await app.stores.flags.create(OPERATOR, { key: 'sched-gone', kind: 'boolean', variants });
      const doomed = await store.create(OPERATOR, 'production', 'sched-gone', { at: Date.now(), action: 'revive' });
      await app.stores.flags.archive(OPERATOR, 'sched-gone');
      const v = app.snapshots.version('production')!;
      const failed = await store.run(doomed.id, noFence);
      expect(failed).toMatchObject({ outcome: 'failed', schedule: { status: 'failed' } });
      expect((await store.get('production', 'sched-gone', doomed.id))!.error).toMatch(/archived/);
      expect(app.snapshots.version('production')).toBe(v);
      expect((await store.run(doomed.id, noFence)).outcome).toBe('skipped');
    });
  });

  // ---------------------------------------------------------------- history (issue 14)
  describe(`history store contract: ${name}`, () => {
    let app: FastifyInstance;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ app, close } = await start());
    });
    afterAll(async () => {
      await close?.();
    });

    it('every version is recorded in its write, with actor, action and reason; pages newest first; ?at= and diffs read it', async () => {
      const { flags, states, history } = app.stores;
      const t0 = Date.now();
      await flags.create(OPERATOR, { key: 'hist', kind: 'boolean', variants });
      const t1 = Date.now();
      await states.putState(
        OPERATOR,
        'production',
        'hist',
        { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } },
        undefined,
        'launch',
      );
      await states.kill({ tokenId: 'tok-1', name: 'oncall' }, 'production', 'hist', 'INC-1');
      await states.kill(OPERATOR, 'production', 'hist', 'again'); // idempotent: no version
      const all = await history.list('production', 'hist');
      expect(all.nextCursor).toBeNull();
      expect(all.entries.map((e) => [e.version, e.action, e.actor.name, e.reason ?? null])).toEqual([
        [3, 'flag.kill', 'oncall', 'INC-1'],
        [2, 'flag-state.update', 'contract', 'launch'],
        [1, 'flag.create', 'contract', null],
      ]);
      expect(all.entries[0]!.actor.tokenId).toBe('tok-1');
      expect(all.entries[0]!.state).toMatchObject({ enabled: false, fallthrough: { variant: 'on' }, version: 3 });
      const current = (await states.getState('production', 'hist'))!;
      expect(all.entries[0]!.state.version).toBe(current.version);

      const page = await history.list('production', 'hist', { limit: 2 });
      expect(page.entries.map((e) => e.version)).toEqual([3, 2]);
      const rest = await history.list('production', 'hist', { cursor: 2, limit: 2 });
      expect(rest).toEqual({ entries: [all.entries[2]], nextCursor: null });

      expect(await history.at('production', 'hist', t0 - 1)).toBeNull();
      expect((await history.at('production', 'hist', t1))!.version).toBeGreaterThanOrEqual(1);
      expect((await history.stateAt('production', 'hist', Date.now()))!).toMatchObject({ killReason: 'INC-1', panicked: false });
      const diff = await history.diff('production', 'hist', 1, 2);
      expect('changes' in diff && diff.changes).toEqual([{ op: 'replace', path: '/enabled', before: false, after: true }]);
      expect(await history.diff('production', 'hist', 1, 9)).toEqual({ missing: 9 });
    });

    it('revert writes an old version as a new one (audited); an unknown version or an archived flag is refused and nothing is written', async () => {
      const { flags, states, history, audit } = app.stores;
      await flags.create(OPERATOR, { key: 'rev', kind: 'boolean', variants });
      await states.putState(OPERATOR, 'staging', 'rev', { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } });
      await states.kill(OPERATOR, 'staging', 'rev', null);
      const before = app.snapshots.version('staging')!;
      const reverted = await states.revert(OPERATOR, 'staging', 'rev', 2, 'fixed');
      expect(reverted).toMatchObject({ changed: true, state: { enabled: true, version: 4, killedAt: null } });
      expect(reverted.environmentVersion).toBe(before + 1);
      expect(app.snapshots.version('staging')).toBe(before + 1);
      expect(await history.get('staging', 'rev', 4)).toMatchObject({ action: 'flag-state.revert', reason: 'fixed' });
      expect((await audit.list({ flag: 'rev', action: 'flag-state.revert' })).entries).toHaveLength(1);

      await expect(states.revert(OPERATOR, 'staging', 'rev', 42, null)).rejects.toMatchObject({ name: 'StoreError', kind: 'not-found' });
      await flags.archive(OPERATOR, 'rev');
      await expect(states.revert(OPERATOR, 'staging', 'rev', 1, null)).rejects.toMatchObject({ name: 'StoreError', kind: 'conflict' });
      expect((await history.list('staging', 'rev')).entries[0]!.version).toBe(4);
      expect((await states.getState('staging', 'rev'))!.version).toBe(4);

      await flags.patch(OPERATOR, 'rev', { archived: false });
      expect((await states.revert(OPERATOR, 'staging', 'rev', 1, null)).state).toMatchObject({ enabled: false, version: 5 });
      expect((await history.list('staging', 'rev')).entries.map((e) => e.version)).toEqual([5, 4, 3, 2, 1]);
    });

    it('a new environment records version 1 of every flag; a write that throws records no version', async () => {
      const { environments, history, states } = app.stores;
      await environments.create(OPERATOR, { key: 'hist-env', name: 'H' });
      expect((await history.list('hist-env', 'hist')).entries.map((e) => [e.version, e.action])).toEqual([[1, 'environment.create']]);
      await expect(
        app.writer.write(OPERATOR, async (w) => {
          await states.mutateState(
            w,
            'hist-env',
            'hist',
            (cur) => ({ state: { enabled: true, offVariant: cur.offVariant, targets: [], rules: [], fallthrough: { variant: 'on' } } }),
            null,
          );
          throw new Error('changed my mind');
        }),
      ).rejects.toThrow('changed my mind');
      expect((await history.list('hist-env', 'hist')).entries.map((e) => e.version)).toEqual([1]);
    });
  });

  describe(`store contract: ${name}: change requests`, () => {
    let app: FastifyInstance;
    let close: () => Promise<void>;
    const AUTHOR: Actor = { tokenId: 'author-token', name: 'author' };
    const REVIEWER: Actor = { tokenId: 'reviewer-token', name: 'reviewer' };
    const ON = { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } };
    beforeAll(async () => {
      ({ app, close } = await start());
      await app.stores.flags.create(OPERATOR, { key: 'cr-flag', kind: 'boolean', variants });
      await app.stores.environments.update(OPERATOR, 'staging', { requireApproval: true });
    });
    afterAll(async () => {
      await close?.();
    });

    it('requireApproval: stored as a boolean, read back, audited; other environments keep writing directly', async () => {
      expect((await app.stores.environments.get('staging'))!.requireApproval).toBe(true);
      expect((await app.stores.environments.list()).map((e) => [e.key, e.requireApproval])).toEqual([
        ['development', false],
        ['staging', true],
        ['production', false],
      ]);
      const direct = await app.stores.changeRequests.putOrRequest(AUTHOR, 'production', 'cr-flag', ON, undefined, null);
      expect(direct.applied).toMatchObject({ changed: true, state: { enabled: true, version: 2 } });
      expect((await app.stores.audit.list({ environment: 'staging' })).entries[0]).toMatchObject({ action: 'environment.update' });
    });

    it('a held state: pending, nothing written, no version; approve by another actor only; apply under the base version', async () => {
      const { changeRequests, states } = app.stores;
      const before = app.snapshots.version('staging');
      const held = await changeRequests.putOrRequest(AUTHOR, 'staging', 'cr-flag', ON, undefined, 'go');
      expect(held.request).toMatchObject({ status: 'pending', baseVersion: 1, state: ON, reason: 'go', author: AUTHOR, currentVersion: 1 });
      const id = held.request!.id;
      expect(app.snapshots.version('staging')).toBe(before);
      expect((await states.getState('staging', 'cr-flag'))!.version).toBe(1);
      await expect(changeRequests.putOrRequest(AUTHOR, 'staging', 'cr-flag', { ...ON, offVariant: 'nope' }, undefined, null)).rejects.toMatchObject({
        kind: 'invalid',
      });
      await expect(changeRequests.approve(AUTHOR, id, null)).rejects.toMatchObject({ name: 'StoreError', kind: 'forbidden' });
      await expect(changeRequests.apply(AUTHOR, id, null)).rejects.toMatchObject({ kind: 'conflict' });
      expect(await changeRequests.approve(REVIEWER, id, 'ok')).toMatchObject({ status: 'approved', reviewer: REVIEWER, reviewReason: 'ok' });
      const { request, result } = await changeRequests.apply(AUTHOR, id, null);
      expect(request.status).toBe('applied');
      expect(result).toMatchObject({ changed: true, environmentVersion: before! + 1, state: { enabled: true, version: 2 } });
      expect(app.snapshots.get('staging')!.flags.find((f) => f.key === 'cr-flag')!.state.enabled).toBe(true);
      expect((await changeRequests.list({ environment: 'staging', status: 'applied' })).map((r) => r.id)).toEqual([id]);
      const actions = (await app.stores.audit.list({ environment: 'staging', limit: 4 })).entries.map((e) => e.action);
      expect(actions).toEqual(['change-request.apply', 'flag-state.update', 'change-request.approve', 'change-request.create']);
    });

    it('apply on a moved base refuses with the diff, atomically; reject closes a request', async () => {
      const { changeRequests, states } = app.stores;
      const held = await changeRequests.putOrRequest(AUTHOR, 'staging', 'cr-flag', { ...ON, fallthrough: { variant: 'off' } }, undefined, null);
      const id = held.request!.id;
      await changeRequests.approve(REVIEWER, id, null);
      await states.kill(OPERATOR, 'staging', 'cr-flag', 'incident');
      const version = app.snapshots.version('staging');
      await expect(changeRequests.apply(REVIEWER, id, null)).rejects.toMatchObject({
        kind: 'conflict',
        details: {
          baseVersion: 2,
          currentVersion: 3,
          diff: [
            { op: 'replace', path: '/enabled', before: false, after: true },
            { op: 'replace', path: '/fallthrough/variant', before: 'on', after: 'off' },
          ],
        },
      });
      expect(app.snapshots.version('staging')).toBe(version);
      expect((await changeRequests.get(id))!.status).toBe('approved');
      expect(await changeRequests.reject(AUTHOR, id, 'withdrawn')).toMatchObject({ status: 'rejected', reviewer: AUTHOR, diff: null });
      await expect(changeRequests.reject(AUTHOR, id, null)).rejects.toMatchObject({ kind: 'conflict' });
      expect(await changeRequests.get('missing')).toBeNull();
      await expect(changeRequests.approve(REVIEWER, 'missing', null)).rejects.toMatchObject({ kind: 'not-found' });
    });
  });

  describe(`store contract: ${name}: triggers`, () => {
    let app: FastifyInstance;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ app, close } = await start());
      await app.stores.flags.create(OPERATOR, { key: 'trig', kind: 'boolean', variants });
      await app.stores.states.revive(OPERATOR, 'production', 'trig', null);
    });
    afterAll(async () => {
      await close?.();
    });

    it('create stores only the SHA-256 of the secret, lists without it, finds by secret; unknown flag or environment refused; audited', async () => {
      const { store } = app.triggers;
      await expect(store.create(OPERATOR, 'production', 'missing', { action: 'kill', name: 'x' })).rejects.toMatchObject({ kind: 'not-found' });
      await expect(store.create(OPERATOR, 'nowhere', 'trig', { action: 'kill', name: 'x' })).rejects.toMatchObject({ kind: 'not-found' });
      const { trigger, secret } = await store.create(OPERATOR, 'production', 'trig', { action: 'kill', name: 'am' });
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(trigger).toMatchObject({
        flag: 'trig',
        environment: 'production',
        action: 'kill',
        name: 'am',
        fired: 0,
        lastFiredAt: null,
        author: { name: 'contract' },
      });
      const rows = await app.store.all<{ hash: string }>('SELECT hash FROM triggers');
      expect(rows).toHaveLength(1);
      expect(rows[0]!.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(rows[0]!.hash).not.toContain(secret);
      expect(await store.list('production', 'trig')).toEqual([trigger]);
      expect(await store.list('staging', 'trig')).toEqual([]);
      await expect(store.list('production', 'missing')).rejects.toMatchObject({ kind: 'not-found' });
      expect(await store.findBySecret(secret)).toEqual(trigger);
      expect(await store.findBySecret(`${secret}x`)).toBeNull();
      const audit = (await app.stores.audit.list({ resourceType: 'trigger' })).entries;
      expect(audit.map((e) => e.action)).toEqual(['trigger.create']);
      expect(audit[0]).toMatchObject({ resourceKey: trigger.id, environment: 'production' });
    });

    it('fire kills (then revives) as trigger:<name> with the reason, counts firings; delete revokes the secret and is audited', async () => {
      const { store } = app.triggers;
      const kill = await store.create(OPERATOR, 'production', 'trig', { action: 'kill', name: 'pager' });
      const revive = await store.create(OPERATOR, 'production', 'trig', { action: 'revive', name: 'resolved' });
      const before = await app.stores.states.getState('production', 'trig');
      expect(before?.enabled).toBe(true);
      const fired = await store.fire(kill.trigger, 'Alertmanager firing: X');
      expect(fired.changed).toBe(true);
      expect(fired.state).toMatchObject({ enabled: false, killReason: 'Alertmanager firing: X' });
      expect((await store.fire(kill.trigger, null)).changed).toBe(false);
      const killAudit = (await app.stores.audit.list({ flag: 'trig', action: 'flag.kill' })).entries[0];
      expect(killAudit).toMatchObject({ actor: { tokenId: null, name: 'trigger:pager' }, reason: 'Alertmanager firing: X' });
      const listed = (await store.list('production', 'trig')).find((t) => t.id === kill.trigger.id)!;
      expect(listed.fired).toBe(2);
      expect(listed.lastFiredAt).not.toBeNull();
      expect((await store.fire(revive.trigger, null)).state.enabled).toBe(true);

      await expect(store.delete(OPERATOR, 'staging', 'trig', kill.trigger.id)).rejects.toMatchObject({ kind: 'not-found' });
      expect(await store.delete(OPERATOR, 'production', 'trig', kill.trigger.id)).toMatchObject({ id: kill.trigger.id, name: 'pager' });
      expect(await store.findBySecret(kill.secret)).toBeNull();
      // A trigger looked up just before it was deleted does nothing when it fires.
      const stateBefore = await app.stores.states.getState('production', 'trig');
      await expect(store.fire(kill.trigger, 'late')).rejects.toMatchObject({ kind: 'not-found' });
      expect(await app.stores.states.getState('production', 'trig')).toEqual(stateBefore);
      await expect(store.delete(OPERATOR, 'production', 'trig', kill.trigger.id)).rejects.toMatchObject({ kind: 'not-found' });
      const deleted = (await app.stores.audit.list({ resourceType: 'trigger', action: 'trigger.delete' })).entries;
      expect(deleted).toHaveLength(1);
      expect(deleted[0]).toMatchObject({ resourceKey: kill.trigger.id, before: { name: 'pager' } });
    });
  });

  describe(`store contract: ${name}: webhooks`, () => {
    let app: FastifyInstance;
    let close: () => Promise<void>;
    // Never made ready: the worker does not run, so the outbox rows stay as the writes left them.
    beforeAll(async () => {
      ({ app, close } = await start());
      await app.stores.flags.create(OPERATOR, { key: 'hooked', kind: 'boolean', variants });
      await app.stores.states.revive(OPERATOR, 'production', 'hooked', null);
    });
    afterAll(async () => {
      await close?.();
    });

    it('CRUD: the secret is answered once, bad URLs and event types are refused, re-enabling resets the failures', async () => {
      const { store } = app.webhooks;
      await expect(store.create({ url: 'mailto:x@y', events: ['flag.killed'] })).rejects.toMatchObject({
        kind: 'invalid',
        issues: [{ path: '/url' }],
      });
      await expect(store.create({ url: 'http://127.0.0.1:9/x', events: ['flag.killed', 'nope'] })).rejects.toMatchObject({
        kind: 'invalid',
        issues: [{ path: '/events/1' }],
      });
      expect(await store.list()).toEqual([]);
      const created = await store.create({ url: 'http://127.0.0.1:9/x', events: ['flag.killed'], environments: ['production'] });
      expect(created.secret).toMatch(/^whsec_/);
      expect(Buffer.from(created.secret.slice(6), 'base64')).toHaveLength(32);
      const listed = await store.list();
      expect(listed).toHaveLength(1);
      expect(listed[0]).not.toHaveProperty('secret');
      expect(listed[0]).toMatchObject({ enabled: true, environments: ['production'], events: ['flag.killed'], format: 'standard', failures: 0 });
      expect(await store.update(created.id, { enabled: false })).toMatchObject({ enabled: false, disabledReason: 'disabled by an operator' });
      expect(await store.update(created.id, { enabled: true, environments: null })).toMatchObject({
        enabled: true,
        disabledReason: null,
        environments: null,
      });
      await store.delete(created.id);
      await expect(store.get(created.id)).rejects.toMatchObject({ kind: 'not-found' });
    });

    it('the outbox: an event and one pending delivery per subscribed webhook commit with the change, or not at all', async () => {
      const { store } = app.webhooks;
      const prod = await store.create({ url: 'http://127.0.0.1:9/a', events: ['flag.killed'], environments: ['production'] });
      const all = await store.create({ url: 'http://127.0.0.1:9/b', events: ['flag.killed', 'flag.revived'] });
      const off = await store.create({ url: 'http://127.0.0.1:9/c', events: ['flag.killed'] });
      await store.update(off.id, { enabled: false });
      // A write that fails after the kill: rolled back, no event.
      await expect(
        app.writer.write(OPERATOR, async (w) => {
          await app.stores.states.mutateState(w, 'production', 'hooked', (cur) => ({ state: { ...cur, enabled: false } as never }), 'x', {
            action: 'flag.kill',
          });
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      expect(await store.deliveries(prod.id)).toEqual([]);
      await app.stores.states.kill(OPERATOR, 'production', 'hooked', 'incident 7');
      const [d] = await store.deliveries(prod.id);
      expect(d).toMatchObject({ status: 'pending', attempts: 0, type: 'flag.killed' });
      expect(d!.payload).toMatchObject({
        type: 'flag.killed',
        data: { environment: 'production', flag: 'hooked', reason: 'incident 7', actor: { name: OPERATOR.name } },
      });
      expect((d!.payload as any).data.version).toBe(app.snapshots.version('production'));
      expect((await store.deliveries(all.id)).map((x) => x.eventId)).toEqual([d!.eventId]);
      expect(await store.deliveries(off.id)).toEqual([]);
      // Staging: only the all-environments webhook.
      await app.stores.states.revive(OPERATOR, 'staging', 'hooked', null);
      expect(await store.deliveries(prod.id)).toHaveLength(1);
      expect((await store.deliveries(all.id)).map((x) => x.type)).toEqual(['flag.revived', 'flag.killed']);
      await expect(store.test(off.id, OPERATOR)).rejects.toMatchObject({ kind: 'conflict' });
      const test = await store.test(prod.id, OPERATOR);
      expect(test).toMatchObject({ type: 'webhook.test', status: 'pending', webhookId: prod.id });
    });
  });
  describe(`store contract: ${name}: console sessions (OpenID Connect)`, () => {
    let app: FastifyInstance;
    let close: () => Promise<void>;
    let clock = 1_800_000_000_000;
    let sessions: SessionStore;
    beforeAll(async () => {
      ({ app, close } = await start());
      sessions = new SessionStore(app.store, () => clock, { idleMs: 60 * 60_000, maxMs: 8 * 3_600_000 });
    });
    afterAll(async () => {
      await close?.();
    });

    it('a sign-in in progress is taken once, and not after ten minutes', async () => {
      await sessions.saveLogin({ state: 's1', nonce: 'n1', codeVerifier: 'v1', returnTo: '/flags/x' });
      await sessions.saveLogin({ state: 's2', nonce: 'n2', codeVerifier: 'v2', returnTo: null });
      expect(await sessions.takeLogin('s1')).toEqual({ state: 's1', nonce: 'n1', codeVerifier: 'v1', returnTo: '/flags/x' });
      expect(await sessions.takeLogin('s1')).toBeNull();
      clock += LOGIN_TTL_MS + 1;
      expect(await sessions.takeLogin('s2')).toBeNull();
      expect(await sessions.takeLogin('unknown')).toBeNull();
    });

    it('a session is found by its secret only (stored hashed), ends when idle, at its lifetime, or revoked; names the person in the audit log', async () => {
      const person = { subject: 'sub-1', email: 'p@example.com', name: 'P. Erson', role: 'oncall' as const, environments: ['production'] };
      const { secret, csrf } = await sessions.create(person);
      const found = await sessions.find(secret);
      expect(found).toMatchObject({ ...person });
      expect(csrfMatches(csrf, found!.csrf)).toBe(true);
      expect(csrfMatches('nope', found!.csrf)).toBe(false);
      expect(await app.store.get('SELECT id FROM sessions WHERE id = ?', [secret])).toBeUndefined();

      // A person's write is audited with kind, subject and email.
      await app.writer.write(sessionActor(found!), (w) => {
        w.audit({ action: 'test.person', resourceType: 'test', resourceKey: 'x' });
      });
      const entry = (await app.stores.audit.list({ action: 'test.person' })).entries[0];
      expect(entry?.actor).toEqual({ tokenId: null, name: 'P. Erson', kind: 'person', subject: 'sub-1', email: 'p@example.com' });

      const start = clock;
      clock = start + 59 * 60_000;
      expect(await sessions.find(secret)).not.toBeNull();
      clock = start + 59 * 60_000 + 60 * 60_000;
      expect(await sessions.find(secret)).toBeNull();

      clock = start;
      const revoked = await sessions.create(person);
      await sessions.revoke((await sessions.find(revoked.secret))!.id);
      expect(await sessions.find(revoked.secret)).toBeNull();

      const long = await sessions.create(person);
      for (let t = start; t < start + 8 * 3_600_000; t += 30 * 60_000) {
        clock = t;
        expect(await sessions.find(long.secret)).not.toBeNull();
      }
      clock = start + 8 * 3_600_000;
      expect(await sessions.find(long.secret)).toBeNull();
    });
  });
}
