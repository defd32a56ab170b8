/**
 * `aviary import --from flagd` with the flagd testbed's own flag files (test/fixtures/flagd, Apache-2.0: see its
 * NOTICE.md): what cannot be translated is refused with a list and changes nothing; what can is imported into a real
 * server and evaluated by the real SDK against the testbed's expected values (gherkin/evaluation.feature and
 * gherkin/targeting.feature). Fractional rollouts bucket with Aviary's hash, not flagd's: their proportions and
 * shared-seed correlation are checked, not individual assignments (docs/import-flagd.md).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { buildCli, removeCli, runCli } from './run-cli.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/flagd/', import.meta.url));
const FILES = ['testing-flags.json', 'custom-ops.json', 'evaluator-refs.json', 'zero-flags.json', 'edge-case-flags.json'];
let srv: TestServer;
let env: Record<string, string>;
let client: AviaryClient;

beforeAll(async () => {
  await buildCli();
  srv = await startServer();
  env = { AVIARY_URL: srv.url, AVIARY_TOKEN: srv.adminToken };
}, 60_000);

afterAll(async () => {
  removeCli();
  await client?.close();
  await srv?.close();
});

const flagKeys = async () => ((await api(srv).get('/api/v1/flags?archived=all')).body.flags as Array<{ key: string }>).map((f) => f.key);

describe('aviary import --from flagd', () => {
  it('refuses a file with untranslatable flags, listing flag, path and why, and changes nothing', async () => {
    const r = await runCli(['import', '--from', 'flagd', join(FIXTURES, 'custom-ops.json')], env);
    expect(r.code).toBe(9);
    expect(r.stderr).toContain('nothing changed');
    expect(r.stderr).toMatch(
      /fractional-nested-if-flag {2}\/flags\/fractional-nested-if-flag\/targeting\/fractional\/1: a bucket computed by an expression/,
    );
    expect(r.stderr).toMatch(
      /fractional-as-condition-flag {2}\/flags\/fractional-as-condition-flag\/targeting\/if\/0\/fractional: the operator `fractional` has no Aviary equivalent/,
    );
    expect(r.stderr).toContain('fractional-flag-A-shared-seed  /flags/fractional-flag-A-shared-seed: not a valid Aviary flag key');
    expect(await flagKeys()).toEqual([]);
  });

  it('--dry-run prints what would be created and changes nothing', async () => {
    const r = await runCli(['import', '--from', 'flagd', '--dry-run', '--partial', join(FIXTURES, 'custom-ops.json')], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('would create 11 flag(s) in development, staging, production');
    expect(r.stdout).toContain('fractional-flag (string; variants clubs="clubs"');
    expect(r.stdout).toContain('otherwise → rollout clubs 25% / diamonds 25% / hearts 25% / spades 25% by user.name');
    expect(r.stdout).toContain('if id startsWith ["abc"] → prefix');
    expect(await flagKeys()).toEqual([]);
  });

  it('imports the testbed files (--partial) with exactly the untranslatable flags left out', async () => {
    const refused: Record<string, string[]> = {};
    for (const file of FILES) {
      const r = await runCli(['import', '--from', 'flagd', '--partial', '--json', join(FIXTURES, file)], env);
      expect(r.code, r.stderr).toBe(0);
      refused[file] = (JSON.parse(r.stdout).refused as Array<{ flag: string }>).map((x) => x.flag).sort();
    }
    expect(refused).toEqual({
      'testing-flags.json': [],
      'custom-ops.json': [
        'fractional-as-condition-false-flag',
        'fractional-as-condition-flag',
        'fractional-flag-A-shared-seed',
        'fractional-flag-B-shared-seed',
        'fractional-nested-if-flag',
        'fractional-nested-var-flag',
        'fractional-nested-weight-flag',
      ],
      'evaluator-refs.json': [],
      'zero-flags.json': [],
      'edge-case-flags.json': [
        'ends-with-wrong-args-flag',
        'error-targeting-flag',
        'fractional-negative-weight-flag',
        'fractional-null-bucket-key-flag',
        'fractional-zero-weights-flag',
        'missing-variant-targeting-flag',
        'semver-wrong-args-flag',
        'starts-with-wrong-args-flag',
      ],
    });
    // The shared-seed pair with keys Aviary accepts (flagd allows upper case in keys, Aviary does not).
    const doc = JSON.parse(readFileSync(join(FIXTURES, 'custom-ops.json'), 'utf8'));
    const renamed = {
      flags: {
        'fractional-flag-a-shared-seed': doc.flags['fractional-flag-A-shared-seed'],
        'fractional-flag-b-shared-seed': doc.flags['fractional-flag-B-shared-seed'],
      },
    };
    const path = join(srv.dir, 'shared-seed.json');
    writeFileSync(path, JSON.stringify(renamed));
    expect((await runCli(['import', '--from', 'flagd', '--env', 'production', path], env)).code).toBe(0);
    // Importing again: the flags exist, so nothing is imported (and nothing changes).
    const again = await runCli(['import', '--from', 'flagd', join(FIXTURES, 'zero-flags.json')], env);
    expect(again.code).toBe(9);
    expect(again.stderr).toContain('boolean-zero-flag  /flags/boolean-zero-flag: a flag with this key already exists');
    const state = await api(srv).get('/api/v1/flags/fractional-flag/environments/production');
    expect(state.body.fallthrough).toEqual({
      rollout: {
        weights: [
          { variant: 'clubs', percent: 25 },
          { variant: 'diamonds', percent: 25 },
          { variant: 'hearts', percent: 25 },
          { variant: 'spades', percent: 25 },
        ],
        bucketBy: 'user.name',
      },
    });
    const audit = await api(srv).get('/api/v1/audit?limit=1');
    expect(JSON.stringify(audit.body)).toContain('imported from flagd');
  });

  it('is all or nothing: when the server refuses one state (an environment that requires approval), no flag is created', async () => {
    const a = api(srv);
    expect((await a.post('/api/v1/environments', { key: 'audited', name: 'Audited' })).status).toBe(201);
    expect((await a.patch('/api/v1/environments/audited', { requireApproval: true })).status).toBe(200);
    const before = await flagKeys();
    const versions = (await a.get('/api/v1/environments')).body.environments;
    const file = join(srv.dir, 'atomic.json');
    const flag = { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' };
    writeFileSync(file, JSON.stringify({ flags: { 'atomic-a': flag, 'atomic-b': flag } }));
    const r = await runCli(['import', '--from', 'flagd', '--env', 'staging', '--env', 'audited', file], env);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toMatch(/approval/);
    expect(await flagKeys()).toEqual(before);
    expect((await a.get('/api/v1/environments')).body.environments).toEqual(versions);
  });

  it('the imported flags evaluate as the flagd testbed expects', async () => {
    client = createClient({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 });
    await client.ready();
    const v = (flag: string, ctx: Record<string, unknown> = {}, def: unknown = 'fallback') =>
      client.variation(flag, { key: 'anyone', ...ctx } as never, def as never);
    // evaluation.feature: resolve values and zero values.
    expect([v('boolean-flag', {}, false), v('string-flag', {}, 'bye'), v('integer-flag', {}, 1), v('float-flag', {}, 0.1)]).toEqual([
      true,
      'hi',
      10,
      0.5,
    ]);
    expect(v('object-flag', {}, {})).toEqual({ showImages: true, title: 'Check out these pics!', imagesPerPage: 100 });
    expect([v('boolean-zero-flag', {}, true), v('string-zero-flag', {}, 'hi'), v('integer-zero-flag', {}, 1), v('float-zero-flag', {}, 0.1)]).toEqual(
      [false, '', 0, 0],
    );
    // testing-flags.json context-aware (flagd's own example).
    const sul = { fn: 'Sulisław', ln: 'Świętopełk', age: 29, customer: false };
    expect(v('context-aware', sul)).toBe('INTERNAL');
    expect(v('context-aware', { ...sul, age: 30 })).toBe('EXTERNAL');
    // targeting.feature: evaluator reuse.
    expect(v('some-email-targeted-flag', { email: 'ballmer@macrosoft.com' })).toBe('hi');
    expect(v('some-other-email-targeted-flag', { email: 'ballmer@macrosoft.com' })).toBe('yes');
    expect(v('some-email-targeted-flag', { email: 'user@example.com' })).toBe('bye');
    expect([
      v('nested-ref-targeted-flag', { email: 'ballmer@macrosoft.com' }),
      v('nested-ref-targeted-flag', { role: 'admin' }),
      v('nested-ref-targeted-flag', { role: 'user' }),
    ]).toEqual(['privileged', 'privileged', 'standard']);
    // Substring operators.
    for (const [id, want] of [
      ['abcdef', 'prefix'],
      ['uvwxyz', 'postfix'],
      ['abcxyz', 'prefix'],
      ['lmnopq', 'none'],
      ['3', 'none'],
    ])
      expect(v('starts-ends-flag', { id }), id).toBe(want);
    // Semantic versions (context values flagd and Aviary both read as strict semver).
    const versions: Array<[string, string, string]> = [
      ['equal-greater-lesser-version-flag', '2.0.0', 'equal'],
      ['equal-greater-lesser-version-flag', '2.1.0', 'greater'],
      ['equal-greater-lesser-version-flag', '1.9.0', 'lesser'],
      ['equal-greater-lesser-version-flag', '2.0.0-alpha', 'lesser'],
      ['equal-greater-lesser-version-flag', '2.0.0.0', 'none'],
      ['major-minor-version-flag', '3.0.1', 'minor'],
      ['major-minor-version-flag', '3.1.0', 'major'],
      ['major-minor-version-flag', '4.0.0', 'none'],
      ['semver-v-prefix-flag', '1.0.0', 'match'],
      ['semver-v-prefix-flag', '2.0.0', 'no-match'],
      ['semver-partial-version-flag', '1.5.0', 'match'],
      ['semver-partial-version-flag', '1.0.0', 'match'],
      ['semver-partial-version-flag', '2.0.0', 'no-match'],
      ['semver-build-metadata-flag', '1.0.0', 'match'],
      ['semver-build-metadata-flag', '1.0.0+other', 'match'],
      ['semver-build-metadata-flag', '2.0.0', 'no-match'],
      ['semver-invalid-version-flag', '1.0.0', 'true'],
      ['semver-invalid-operator-flag', '1.0.0', 'fallback'],
    ];
    for (const [flag, version, want] of versions) expect(v(flag, { version }), `${flag} ${version}`).toBe(want);
    // Errors and edge cases.
    expect([v('targeting-null-variant-flag', {}, 3), v('non-string-variant-targeting-flag', {}, 3), v('empty-targeting-flag', {}, 3)]).toEqual([
      2, 2, 1,
    ]);
    expect(v('fractional-single-entry-flag')).toBe('single');
  });

  it('fractional rollouts keep their proportions and shared seeds keep their correlation', () => {
    const n = 4000;
    const count = (flag: string, ctx: (i: number) => Record<string, unknown>) => {
      const seen: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const r = client.variation(flag, { key: `k-${i}`, ...ctx(i) } as never, 'fallback' as never) as string;
        seen[r] = (seen[r] ?? 0) + 1;
      }
      return seen;
    };
    const suits = count('fractional-flag', (i) => ({ 'user.name': `name-${i}` }));
    expect(Object.keys(suits).sort()).toEqual(['clubs', 'diamonds', 'hearts', 'spades']);
    for (const c of Object.values(suits)) expect(Math.abs(c / n - 0.25)).toBeLessThan(0.04);
    const coins = count('fractional-flag-shorthand', () => ({}));
    expect(Object.keys(coins).sort()).toEqual(['heads', 'tails']);
    expect(Math.abs(coins.heads! / n - 0.5)).toBeLessThan(0.05);
    // Bucketed by user.name: the same name gets the same suit whatever the targeting key.
    expect(client.variation('fractional-flag', { key: 'a', 'user.name': 'jack' } as never, '')).toBe(
      client.variation('fractional-flag', { key: 'b', 'user.name': 'jack' } as never, ''),
    );
    for (let i = 0; i < 500; i++) {
      const ctx = { key: `u-${i}`, 'user.name': `name-${i}` } as never;
      expect(`ace-of-${client.variation('fractional-flag-a-shared-seed', ctx, '' as never)}`).toBe(
        client.variation('fractional-flag-b-shared-seed', ctx, '' as never),
      );
    }
  });
});
