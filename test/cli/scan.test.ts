/**
 * `aviary scan` on the fixture tree test/fixtures/scan (several languages, nested .gitignore files, a re-included
 * file, a binary file), copied to a temporary directory with a node_modules package added (git would not keep one in
 * the repository). Known keys from `--keys` and from a real server.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { buildCli, removeCli, runCli } from './run-cli.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/scan', import.meta.url));
let dir: string;
let srv: TestServer;

beforeAll(async () => {
  await buildCli();
  dir = mkdtempSync(join(tmpdir(), 'aviary-scan-'));
  cpSync(FIXTURE, dir, { recursive: true });
  mkdirSync(join(dir, 'node_modules', 'dep'), { recursive: true });
  writeFileSync(join(dir, 'node_modules', 'dep', 'index.js'), "client.variation('new-checkout', {}, false); 'old-flag';\n");
  // Too big to read (over 2 MiB), though it names a flag.
  writeFileSync(join(dir, 'huge.txt'), `'old-flag'\n${'x'.repeat(2 * 1024 * 1024)}`);
  srv = await startServer();
}, 60_000);

afterAll(async () => {
  removeCli();
  rmSync(dir, { recursive: true, force: true });
  await srv?.close();
});

type Ref = { file: string; line: number; kind: string; call?: string };
const where = (refs: Ref[]) => refs.map((r) => `${r.file}:${r.line} ${r.kind === 'call' ? r.call : 'string'}`);

describe('aviary scan', () => {
  it('reports, per known flag, where it is used, what is referenced nowhere and unknown keys in calls', async () => {
    const r = await runCli(['scan', dir, '--keys', join(dir, 'keys.txt'), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(Object.fromEntries(Object.entries(out.flags as Record<string, Ref[]>).map(([k, v]) => [k, where(v)]))).toEqual({
      'banner-text': ['src/checkout.mjs:7 string', 'src/service.py:3 get_string_value'],
      'beta-banner': ['sub/deeper/settings.rb:3 fetch_boolean_value'],
      'dark-mode': ['src/Checkout.java:4 getBooleanValueDetails', 'src/checkout.mjs:5 getBooleanValue'],
      'new-checkout': ['src/checkout.mjs:3 variation', 'src/main.go:5 BooleanValue'],
      'old-flag': [],
      'rate-limit': ['keep.log:1 string', 'src/service.py:6 get_integer_details'],
      'search-v2': ['src/checkout.mjs:4 variationDetail'],
    });
    expect(out.unreferenced).toEqual(['old-flag']);
    expect(Object.fromEntries(Object.entries(out.unknown as Record<string, Ref[]>).map(([k, v]) => [k, where(v)]))).toEqual({
      'new-chekout': ['src/checkout.mjs:6 variation'],
    });
    // The binary and the huge file are skipped, not read.
    expect(out.filesSkipped).toBe(2);
    expect(out.flags['new-checkout'][0]).toMatchObject({ column: 38 });
  });

  it('--check exits 8 when a known flag is referenced nowhere; the text report names it', async () => {
    const r = await runCli(['scan', dir, '--keys', join(dir, 'keys.txt'), '--check']);
    expect(r.code).toBe(8);
    expect(r.stdout).toContain('referenced nowhere (1): old-flag');
    expect(r.stdout).toContain('  src/main.go:5  BooleanValue()');
  });

  it("takes the server's flags as the known keys", async () => {
    const a = api(srv);
    for (const key of ['new-checkout', 'dark-mode', 'never-used']) expect((await a.post('/api/v1/flags', { key, kind: 'boolean' })).status).toBe(201);
    const r = await runCli(['scan', dir, '--json', '--check'], { AVIARY_URL: srv.url, AVIARY_TOKEN: srv.adminToken });
    expect(r.code).toBe(8);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out.flags)).toEqual(['dark-mode', 'never-used', 'new-checkout']);
    expect(out.unreferenced).toEqual(['never-used']);
    expect(Object.keys(out.unknown).sort()).toEqual(['banner-text', 'beta-banner', 'new-chekout', 'rate-limit', 'search-v2']);
  });

  it('bad usage and a missing token have their exit codes', async () => {
    expect((await runCli(['scan', join(dir, 'nope'), '--keys', join(dir, 'keys.txt')])).code).toBe(2);
    expect((await runCli(['scan', dir, '--keys', join(dir, 'no-such-keys.txt')])).code).toBe(2);
    const noToken = await runCli(['scan', dir]);
    expect(noToken.code).toBe(3);
    expect(noToken.stderr).toContain('AVIARY_TOKEN');
  });
});
