/** `aviary export`, `plan`, `apply` and `promote` against a real server holding every kind of flag state. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { auditCount, populate, versions } from '../gitops/scenario.js';
import { buildCli, removeCli, runCli } from './run-cli.js';

let srv: TestServer;
let a: ReturnType<typeof api>;
let env: Record<string, string>;
let dir: string;

beforeAll(async () => {
  await buildCli();
  srv = await startServer();
  a = api(srv);
  env = { AVIARY_URL: srv.url, AVIARY_TOKEN: srv.adminToken };
  dir = mkdtempSync(join(tmpdir(), 'aviary-gitops-'));
  await populate(a);
});
afterAll(async () => {
  await srv?.close();
  removeCli();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const exportYaml = async (args: string[] = []) => {
  const res = await runCli(['export', ...args], env);
  expect(res.code, res.stderr).toBe(0);
  return res.stdout;
};

describe('aviary export', () => {
  it('prints stable YAML that points editors at the schema and validates against it', async () => {
    const text = await exportYaml();
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=./aviary.schema.json');
    expect(await exportYaml()).toBe(text);
    const doc = YAML.parse(text);
    const schema = JSON.parse(readFileSync(new URL('../../schemas/aviary.schema.json', import.meta.url), 'utf8'));
    const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
    expect(text).toMatch(/^version: 1$/m);
    expect(text).toContain('reason: incident-42');
    expect(text).toMatch(/canary:\n\s+state: running/);
    const only = YAML.parse(await exportYaml(['--env', 'production']));
    expect(Object.keys(only.flags[1].environments)).toEqual(['production']);
    const two = YAML.parse(await exportYaml(['--env', 'staging', '--env', 'production']));
    expect(Object.keys(two.flags[1].environments)).toEqual(['production', 'staging']);
    expect((await runCli(['export', '--env', 'nowhere'], env)).code).toBe(4);
  });
});

describe('aviary plan and apply', () => {
  it('export → plan is exit 0; apply of the export changes nothing and audits nothing', async () => {
    const path = file('same.yaml', await exportYaml());
    const plan = await runCli(['plan', '-f', path], env);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain('No changes');
    const before = { audit: await auditCount(a), versions: await versions(a) };
    const apply = await runCli(['apply', '-f', path, '--reason', 'noop'], env);
    expect(apply.code, apply.stderr).toBe(0);
    expect(await auditCount(a)).toBe(before.audit);
    expect(await versions(a)).toEqual(before.versions);
  });

  it('plan shows field-level changes (exit 7); a concurrent edit makes apply --plan refuse; apply applies with the reason', async () => {
    const doc = YAML.parse(await exportYaml());
    doc.flags.find((f: { key: string }) => f.key === 'theme').environments.production.fallthrough = { variant: 'dark' };
    doc.segments.find((s: { key: string }) => s.key === 'internal').included.push('u-10');
    const path = file('edit.yaml', YAML.stringify(doc));
    const plan = await runCli(['plan', '-f', path], env);
    expect(plan.code, plan.stderr).toBe(7);
    expect(plan.stdout).toMatch(/^~ segment internal \(r\d+\)$/m);
    expect(plan.stdout).toMatch(/^ {4}\/included\/1: \+ "u-10"$/m);
    expect(plan.stdout).toMatch(/^~ state of theme in production \(v\d+\)$/m);
    expect(plan.stdout).toMatch(/^ {4}\/fallthrough\/variant: "light" → "dark"$/m);
    expect(plan.stdout).toContain('Plan: 0 to create, 2 to update, 0 to delete, 0 to archive.');
    const fingerprint = /Fingerprint: (sha256:[0-9a-f]+)/.exec(plan.stdout)![1]!;

    // Someone changes the theme's state meanwhile: the apply of that plan is refused and changes nothing.
    const cur = (await a.get('/api/v1/flags/theme/environments/production')).body;
    expect((await a.put('/api/v1/flags/theme/environments/production', { ...cur, targets: [{ variant: 'dark', keys: ['boss'] }] })).status).toBe(200);
    const before = { audit: await auditCount(a), versions: await versions(a) };
    const stale = await runCli(['apply', '-f', path, '--reason', 'stale', '--plan', fingerprint], env);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/changed since the plan/);
    expect(await auditCount(a)).toBe(before.audit);
    expect(await versions(a)).toEqual(before.versions);

    const apply = await runCli(['apply', '-f', path, '--reason', 'PR #7'], env);
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(/Applied 2 change\(s\)/);
    const audit = (await a.get('/api/v1/audit?limit=5')).body.entries as { action: string; reason: string }[];
    expect(
      audit
        .filter((e) => e.reason === 'PR #7')
        .map((e) => e.action)
        .sort(),
    ).toEqual(['flag-state.update', 'flags-as-code.apply', 'segment.update']);
    expect((await a.get('/api/v1/flags/theme/environments/production')).body).toMatchObject({ fallthrough: { variant: 'dark' }, targets: [] });
    expect((await runCli(['plan', '-f', path], env)).code).toBe(0);
  });

  it('a bad entry: exit 1 naming it, nothing changed; not YAML or no --reason: exit 2', async () => {
    const doc = YAML.parse(await exportYaml());
    doc.flags.find((f: { key: string }) => f.key === 'child').environments.production.prerequisites = [{ flag: 'nope', variants: ['on'] }];
    doc.segments.push({ key: 'extra', included: [], excluded: [], rules: [] });
    const path = file('bad.yaml', YAML.stringify(doc));
    const before = { audit: await auditCount(a), versions: await versions(a) };
    const res = await runCli(['apply', '-f', path, '--reason', 'bad'], env);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('flag "child" in "production"');
    expect(await auditCount(a)).toBe(before.audit);
    expect(await versions(a)).toEqual(before.versions);
    expect((await a.get('/api/v1/segments/extra')).status).toBe(404);
    expect((await runCli(['plan', '-f', file('junk.yaml', 'flags: [unclosed')], env)).code).toBe(2);
    expect((await runCli(['apply', '-f', path], env)).code).toBe(2);
  });
});

describe('aviary promote', () => {
  it('shows the diff; asks (refused without a terminal); --yes copies, audited', async () => {
    const dry = await runCli(['promote', 'checkout', '--from', 'production', '--to', 'development', '--dry-run'], env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^~ state of checkout in development \(v\d+\) ← production$/m);
    expect(dry.stdout).toMatch(/^ {4}\/targets\/0: \+ /m);
    const before = (await a.get('/api/v1/flags/checkout/environments/development')).body;
    const refused = await runCli(['promote', 'checkout', '--from', 'production', '--to', 'development'], env);
    expect(refused.code).toBe(2);
    expect((await a.get('/api/v1/flags/checkout/environments/development')).body.version).toBe(before.version);
    const res = await runCli(['promote', 'checkout', '--from', 'production', '--to', 'development', '--yes', '--reason', 'go'], env);
    expect(res.code, res.stderr).toBe(0);
    const [dev, prod] = [
      (await a.get('/api/v1/flags/checkout/environments/development')).body,
      (await a.get('/api/v1/flags/checkout/environments/production')).body,
    ];
    expect(dev.rules).toEqual(prod.rules);
    expect(dev.targets).toEqual(prod.targets);
    expect((await a.get('/api/v1/audit?limit=1')).body.entries[0]).toMatchObject({ action: 'flag-state.promote', reason: 'go' });
    const again = await runCli(['promote', 'checkout', '--from', 'production', '--to', 'development', '--yes'], env);
    expect(again.stdout).toContain('No changes');
  });
});
