/**
 * Flags as code on a real server (SQLite): export → apply is a no-op, changes apply in one transaction with their
 * reason, a concurrent edit between plan and apply is refused, a bad entry anywhere changes nothing and is named,
 * canary-managed states cannot be changed, promote shows its diff and is If-Match protected.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { auditCount, populate, versions } from './scenario.js';

let srv: TestServer;
let a: ReturnType<typeof api>;
beforeAll(async () => {
  srv = await startServer();
  a = api(srv);
  await populate(a);
});
afterAll(() => srv.close());

const exportDoc = async (query = '') => {
  const res = await a.get(`/api/v1/export${query}`);
  expect(res.status).toBe(200);
  return res.body;
};
const plan = (document: unknown) => a.post('/api/v1/apply', { document, dryRun: true });
const state = async (flag: string, env: string) => (await a.get(`/api/v1/flags/${flag}/environments/${env}`)).body;

describe('export', () => {
  it('holds every flag, segment and state, sorted, with read-only notes for kills and canaries', async () => {
    const doc = await exportDoc();
    expect(doc.version).toBe(1);
    expect(doc.segments.map((s: { key: string }) => s.key)).toEqual(['beta-testers', 'internal']);
    expect(doc.flags.map((f: { key: string }) => f.key)).toEqual(['canaried', 'checkout', 'child', 'killme', 'limits', 'old', 'parent', 'theme']);
    const flag = (k: string) => doc.flags.find((f: { key: string }) => f.key === k);
    expect(Object.keys(flag('checkout').environments)).toEqual(['development', 'production', 'staging']);
    expect(Object.keys(flag('checkout'))).toEqual(['key', 'kind', 'description', 'tags', 'variants', 'environments']);
    expect(flag('killme').environments.production).toMatchObject({ enabled: false, killed: { reason: 'incident-42' } });
    expect(flag('canaried').environments.staging.canary).toEqual({ state: 'running', control: 'off', canary: 'on', stage: 0, percent: 0 });
    expect(flag('child').environments.production.prerequisites).toEqual([{ flag: 'parent', variants: ['on'] }]);
    expect(flag('old')).toMatchObject({ archived: true });
    expect(flag('old').environments).toBeUndefined();
  });

  it('validates against the JSON Schema of the file', async () => {
    const schema = JSON.parse(readFileSync(new URL('../../schemas/aviary.schema.json', import.meta.url), 'utf8'));
    const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);
    for (const doc of [await exportDoc(), await exportDoc('?environment=production')]) {
      expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
    }
    // The schema is not vacuous: an unknown operator and a missing fallthrough are refused.
    const bad = await exportDoc();
    bad.flags[1].environments.production.rules[0].conditions[0].op = 'almost';
    delete bad.flags[1].environments.staging.fallthrough;
    expect(validate(bad)).toBe(false);
  });

  it('limits states to the environments asked for, and 404s an unknown one', async () => {
    const doc = await exportDoc('?environment=production&environment=staging');
    expect(Object.keys(doc.flags[1].environments)).toEqual(['production', 'staging']);
    expect((await a.get('/api/v1/export?environment=nowhere')).status).toBe(404);
  });
});

describe('apply', () => {
  it('export → apply changes nothing: no change planned, nothing audited, no version moved', async () => {
    const doc = await exportDoc();
    const before = { audit: await auditCount(a), versions: await versions(a) };
    const dry = await plan(doc);
    expect(dry.status).toBe(200);
    expect(dry.body.changes).toEqual([]);
    const res = await a.post('/api/v1/apply', { document: doc, reason: 'no-op' }, { headers: { 'if-match': `"${dry.body.fingerprint}"` } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ applied: false, changes: [] });
    expect(await auditCount(a)).toBe(before.audit);
    expect(await versions(a)).toEqual(before.versions);
  });

  it('plans field-level changes and applies them in one transaction, each audited with the reason', async () => {
    const doc = await exportDoc();
    const checkout = doc.flags.find((f: { key: string }) => f.key === 'checkout');
    checkout.environments.production.fallthrough = { variant: 'on' };
    checkout.description = 'the new checkout';
    doc.segments.push({ key: 'vip', description: '', included: ['v-1'], excluded: [], rules: [] });
    doc.flags.push({
      key: 'banner',
      kind: 'string',
      variants: [
        { key: 'a', value: 'A' },
        { key: 'b', value: 'B' },
      ],
      environments: {
        production: {
          enabled: true,
          offVariant: 'a',
          targets: [],
          rules: [{ id: 'vips', conditions: [{ segment: 'vip' }], serve: { variant: 'b' } }],
          fallthrough: { variant: 'a' },
        },
      },
    });
    const dry = await plan(doc);
    expect(dry.status).toBe(200);
    expect(
      dry.body.changes.map((c: { action: string; resource: string; key: string; environment?: string }) => [
        c.action,
        c.resource,
        c.key,
        c.environment ?? null,
      ]),
    ).toEqual([
      ['create', 'segment', 'vip', null],
      ['update', 'flag', 'checkout', null],
      ['create', 'flag', 'banner', null],
      ['update', 'state', 'checkout', 'production'],
      ['create', 'state', 'banner', 'production'],
    ]);
    const fallthrough = dry.body.changes[3];
    expect(fallthrough.etag).toMatch(/^v\d+$/);
    expect(fallthrough.fields.map((c: { path: string }) => c.path)).toEqual(['/fallthrough/rollout', '/fallthrough/variant']);
    // Nothing was written by the dry run.
    expect((await state('checkout', 'production')).fallthrough).toHaveProperty('rollout');
    const before = await versions(a);
    const res = await a.post('/api/v1/apply', { document: doc, reason: 'PR #12' }, { headers: { 'if-match': `"${dry.body.fingerprint}"` } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.applied).toBe(true);
    expect((await state('checkout', 'production')).fallthrough).toEqual({ variant: 'on' });
    expect((await state('banner', 'production')).rules[0].serve).toEqual({ variant: 'b' });
    // One transaction: every environment moved by exactly one version.
    const after = await versions(a);
    for (const env of Object.keys(before)) expect(after[env]).toBe(before[env]! + 1);
    const audit = (await a.get('/api/v1/audit?limit=20')).body.entries as { action: string; reason: string | null; resourceKey: string }[];
    const ours = audit.filter((e) => e.reason === 'PR #12');
    expect(ours.map((e) => e.action).sort()).toEqual([
      'flag-state.update',
      'flag-state.update',
      'flag.create',
      'flag.update',
      'flags-as-code.apply',
      'segment.create',
    ]);
    // And now the file matches the server.
    expect((await plan(doc)).body.changes).toEqual([]);
  });

  it('refuses (412) an apply when something it touches changed since the plan, and changes nothing', async () => {
    const doc = await exportDoc();
    doc.flags.find((f: { key: string }) => f.key === 'theme').environments.production.fallthrough = { variant: 'dark' };
    const dry = await plan(doc);
    expect(dry.body.changes).toHaveLength(1);
    // Someone edits the same state meanwhile.
    const cur = await state('theme', 'production');
    expect((await a.put('/api/v1/flags/theme/environments/production', { ...cur, targets: [{ variant: 'dark', keys: ['boss'] }] })).status).toBe(200);
    const edited = await state('theme', 'production');
    const before = { audit: await auditCount(a), versions: await versions(a) };
    const res = await a.post('/api/v1/apply', { document: doc, reason: 'stale' }, { headers: { 'if-match': `"${dry.body.fingerprint}"` } });
    expect(res.status).toBe(412);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body.fingerprint).not.toBe(dry.body.fingerprint);
    expect(await state('theme', 'production')).toEqual(edited);
    expect(await auditCount(a)).toBe(before.audit);
    expect(await versions(a)).toEqual(before.versions);
  });

  it('is all or nothing: a bad entry anywhere changes nothing, and the problem names it', async () => {
    const doc = await exportDoc();
    doc.segments.push({ key: 'new-seg', included: [], excluded: [], rules: [] });
    doc.flags.find((f: { key: string }) => f.key === 'checkout').environments.development.fallthrough = { variant: 'on' };
    const theme = doc.flags.findIndex((f: { key: string }) => f.key === 'theme');
    doc.flags[theme].environments.staging.rules = [
      { id: 'r', conditions: [{ attribute: 'x', op: 'in', values: ['1'] }], serve: { variant: 'nope' } },
    ];
    const before = { audit: await auditCount(a), versions: await versions(a), doc: await exportDoc() };
    for (const dryRun of [true, false]) {
      const res = await a.post('/api/v1/apply', { document: doc, dryRun, reason: 'bad' });
      expect(res.status).toBe(400);
      expect(res.body.detail).toContain('flag "theme" in "staging"');
      expect(res.body.entry).toBe(`/document/flags/${theme}/environments/staging`);
      expect(res.body.errors[0].path).toMatch(new RegExp(`^/document/flags/${theme}/environments/staging/rules/0/serve`));
    }
    expect(await auditCount(a)).toBe(before.audit);
    expect(await versions(a)).toEqual(before.versions);
    expect(await exportDoc()).toEqual(before.doc);
  });

  it('refuses to change a state a running canary manages, naming it; a file exported during the canary still applies as it moves on', async () => {
    const doc = await exportDoc();
    const canaried = doc.flags.findIndex((f: { key: string }) => f.key === 'canaried');
    const entry = doc.flags[canaried].environments.staging;
    expect(entry.canary).toMatchObject({ state: 'running', stage: 0 });
    // The canary moves on after the export: the file's (earlier) stage is not a change.
    expect((await a.post('/api/v1/flags/canaried/environments/staging/canary/advance', { reason: 'next' })).status).toBe(200);
    expect((await state('canaried', 'staging')).fallthrough).toHaveProperty('rollout');
    expect((await plan(doc)).body.changes).toEqual([]);
    // Changing what the operator owns is refused, naming the entry.
    const targeted = structuredClone(doc);
    targeted.flags[canaried].environments.staging.targets = [{ variant: 'on', keys: ['vip'] }];
    const res = await plan(targeted);
    expect(res.status).toBe(409);
    expect(res.body.detail).toMatch(/flag "canaried" in "staging": its state is managed by a running canary/);
    expect(res.body.entry).toBe(`/document/flags/${canaried}/environments/staging`);
    // A file that does not know of the canary (no `canary:` note) and changes what it manages is refused too.
    const unaware = structuredClone(doc);
    delete unaware.flags[canaried].environments.staging.canary;
    unaware.flags[canaried].environments.staging.fallthrough = { variant: 'on' };
    expect((await plan(unaware)).status).toBe(409);
  });

  it('archives flags and deletes segments the document no longer holds, and refuses a duplicate key', async () => {
    const doc = await exportDoc();
    doc.flags = doc.flags.filter((f: { key: string }) => f.key !== 'limits');
    doc.segments = doc.segments.filter((s: { key: string }) => s.key !== 'vip' && s.key !== 'new-seg');
    doc.flags.find((f: { key: string }) => f.key === 'banner').environments.production.rules = [];
    const dry = await plan(doc);
    expect(dry.body.changes.map((c: { action: string; key: string }) => `${c.action} ${c.key}`)).toEqual([
      'update banner',
      'archive limits',
      'delete vip',
    ]);
    const res = await a.post('/api/v1/apply', { document: doc, reason: 'cleanup' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect((await a.get('/api/v1/flags/limits')).body.archived).toBe(true);
    expect((await a.get('/api/v1/segments/vip')).status).toBe(404);
    const dup = await exportDoc();
    dup.flags.push({ ...dup.flags[0] });
    const bad = await plan(dup);
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].path).toBe(`/document/flags/${dup.flags.length - 1}/key`);
  });

  it('with prune: false applies the document on top of what exists: what it does not list is left alone', async () => {
    const before = (await exportDoc()).flags.map((f: { key: string }) => f.key);
    const archivedBefore = (await exportDoc()).flags.filter((f: { archived?: boolean }) => f.archived).map((f: { key: string }) => f.key);
    const doc = {
      version: 1,
      flags: [
        {
          key: 'added-on-top',
          kind: 'boolean',
          environments: { staging: { enabled: true, offVariant: 'off', fallthrough: { variant: 'on' } } },
        },
      ],
    };
    const dry = await a.post('/api/v1/apply', { document: doc, dryRun: true, prune: false });
    expect(dry.status, JSON.stringify(dry.body)).toBe(200);
    expect(dry.body.changes.map((c: { action: string; resource: string; key: string }) => `${c.action} ${c.resource} ${c.key}`)).toEqual([
      'create flag added-on-top',
      'create state added-on-top',
    ]);
    // The same document pruning (the default) would archive every other flag: refused here, since the scenario's
    // flags include one a canary manages and ones other flags require.
    expect((await a.post('/api/v1/apply', { document: doc, dryRun: true })).status).not.toBe(200);
    const res = await a.post('/api/v1/apply', { document: doc, prune: false, reason: 'on top' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const after = (await exportDoc()).flags;
    expect(after.map((f: { key: string }) => f.key).sort()).toEqual([...before, 'added-on-top'].sort());
    expect(after.filter((f: { archived?: boolean }) => f.archived).map((f: { key: string }) => f.key)).toEqual(archivedBefore);
    expect((await a.get('/api/v1/flags/added-on-top/environments/staging')).body.enabled).toBe(true);
  });

  it('takes a document larger than one resource body (over 1 MiB)', async () => {
    const doc = await exportDoc();
    doc.segments.push({ key: 'everyone', included: Array.from({ length: 90_000 }, (_, i) => `customer-${i}`), excluded: [], rules: [] });
    expect(JSON.stringify(doc).length).toBeGreaterThan(1024 * 1024);
    const res = await plan(doc);
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
    expect(res.body.changes.map((c: { action: string; key: string }) => `${c.action} ${c.key}`)).toEqual(['create everyone']);
  });

  it('refuses a document that does not have the shape (400 naming the field)', async () => {
    const res = await a.post('/api/v1/apply', { document: { version: 1, flags: [{ key: 'x' }] }, dryRun: true });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body.errors)).toContain('/document/flags/0');
  });
});

describe('promote', () => {
  it('shows the diff, refuses a stale If-Match, copies the state, audited with the reason', async () => {
    const dry = await a.post('/api/v1/flags/checkout/promote', { from: 'production', to: 'staging', dryRun: true });
    expect(dry.status).toBe(200);
    expect(dry.body.changed).toBe(false);
    expect(dry.body.changes.some((c: { path: string }) => c.path.startsWith('/rules'))).toBe(true);
    const staging = await state('checkout', 'staging');
    expect(staging.rules).toEqual([]);
    const stale = await a.post(
      '/api/v1/flags/checkout/promote',
      { from: 'production', to: 'staging' },
      { headers: { 'if-match': `"v${staging.version + 5}"` } },
    );
    expect(stale.status).toBe(412);
    expect((await state('checkout', 'staging')).version).toBe(staging.version);
    const res = await a.post(
      '/api/v1/flags/checkout/promote',
      { from: 'production', to: 'staging', reason: 'ship it' },
      { headers: { 'if-match': dry.headers.get('etag')! } },
    );
    expect(res.status).toBe(200);
    expect(res.body.changed).toBe(true);
    const { version: _v1, environment: _e1, updatedAt: _u1, ...copied } = await state('checkout', 'staging');
    const { version: _v2, environment: _e2, updatedAt: _u2, ...source } = await state('checkout', 'production');
    expect(copied).toEqual(source);
    const entry = (await a.get('/api/v1/audit?limit=1')).body.entries[0];
    expect(entry).toMatchObject({ action: 'flag-state.promote', reason: 'ship it', environment: 'staging' });
    expect((await a.post('/api/v1/flags/checkout/promote', { from: 'production', to: 'staging', dryRun: true })).body.changes).toEqual([]);
  });

  it('refuses to overwrite a canary-managed state or copy one mid-canary, and unknown environments', async () => {
    const res = await a.post('/api/v1/flags/canaried/promote', { from: 'production', to: 'staging' });
    expect(res.status).toBe(409);
    expect(res.body.detail).toContain('"canaried" in "staging": its state is managed by a running canary');
    const from = await a.post('/api/v1/flags/canaried/promote', { from: 'staging', to: 'production' });
    expect(from.status).toBe(409);
    expect(from.body.detail).toContain("canary's stage");
    expect((await a.post('/api/v1/flags/checkout/promote', { from: 'production', to: 'nowhere' })).status).toBe(404);
    expect((await a.post('/api/v1/flags/checkout/promote', { from: 'production', to: 'production' })).status).toBe(400);
  });
});
