import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnServer } from '../helpers/child-server.js';
import { api, startServer } from '../helpers/server.js';

const dir = mkdtempSync(join(tmpdir(), 'aviary-persist-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('persistence and boot', () => {
  it('keeps flags, states, segments, tokens, audit and versions across a restart', async () => {
    const first = await startServer();
    const a = api(first);
    await a.post('/api/v1/segments', { key: 'staff', included: ['alice'] });
    await a.post('/api/v1/flags', { key: 'persisted', kind: 'boolean' });
    await a.put('/api/v1/flags/persisted/environments/production', {
      enabled: true,
      offVariant: 'off',
      rules: [{ id: 'staff', conditions: [{ segment: 'staff' }], serve: { variant: 'on' } }],
      fallthrough: { variant: 'off' },
    });
    await a.post('/api/v1/flags/persisted/environments/production/kill', { reason: 'before restart' });
    const token = (await a.post('/api/v1/tokens', { kind: 'sdk', environment: 'production', name: 'svc' })).body.token as string;
    const snapBefore = (await a.get('/sdk/v1/flags', { token })).body;
    const auditBefore = (await a.get('/api/v1/audit')).body.entries;

    const second = await first.restart();
    try {
      const b = api(second);
      expect((await b.get('/sdk/v1/flags', { token })).body).toEqual(snapBefore);
      expect((await b.get('/api/v1/audit')).body.entries).toEqual(auditBefore);
      expect((await b.get('/api/v1/flags/persisted/environments/production')).body).toMatchObject({ enabled: false, killReason: 'before restart' });
      expect((await b.get('/api/v1/environments')).body.environments.map((e: { key: string }) => e.key)).toEqual([
        'development',
        'staging',
        'production',
      ]);
      // versions keep counting from where they were, so resuming SDKs see no gap
      const revive = await b.post('/api/v1/flags/persisted/environments/production/revive');
      expect(revive.body.environmentVersion).toBe(snapBefore.version + 1);
      expect(second.app.snapshots.changesSince('production', snapBefore.version)).toHaveLength(1);
    } finally {
      await second.close();
    }
  });

  it('npm start: prints a generated admin token once on first boot, accepts AVIARY_SDK_KEY_<ENV>, drains on SIGTERM', async () => {
    const dbPath = join(dir, 'boot.db');
    const sdkKey = 'boot-sdk-key-production-0123456789';
    const first = await spawnServer(dbPath, { AVIARY_SDK_KEY_PRODUCTION: sdkKey, AVIARY_ADMIN_TOKEN: '' });
    const m = /\n {2}(avi_admin_[A-Za-z0-9_-]+)\n/.exec(first.stdout());
    expect(m).not.toBeNull();
    const adminToken = m![1]!;
    const a = api({ url: first.url, adminToken });
    expect((await a.post('/api/v1/flags', { key: 'booted', kind: 'boolean' })).status).toBe(201);
    const snap = await a.get('/sdk/v1/flags', { token: sdkKey });
    expect(snap.status).toBe(200);
    expect(snap.body.environment).toBe('production');
    // the secret never appears in the structured log
    const logLines = first
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'));
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('\n')).not.toContain(adminToken);
    expect(logLines.join('\n')).not.toContain(sdkKey);
    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);

    const second = await spawnServer(dbPath, { AVIARY_ADMIN_TOKEN: '' });
    try {
      expect(second.stdout()).not.toContain('avi_admin_');
      const b = api({ url: second.url, adminToken });
      expect((await b.get('/api/v1/flags/booted')).status).toBe(200);
      // AVIARY_SDK_KEY_PRODUCTION is no longer set: that key no longer works
      expect((await b.get('/sdk/v1/flags', { token: sdkKey })).status).toBe(401);
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });
});
