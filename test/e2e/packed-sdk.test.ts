/**
 * The SDK as an application outside the repo gets it: `sdk/scripts/pack.mjs` (what `npm run build` runs) packs the
 * tarball, a scratch app in a temp directory `npm install`s it, and the READMEs' examples run there as written against
 * a real server: they import `@aviary/sdk` (and `@aviary/sdk/openfeature`), wait for the flags, evaluate, close, and
 * exit by themselves. The tarball's contents, its package.json, and its typings (type-checked as an app would) are
 * checked too.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { setState } from '../stream/fixtures.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface PackReport {
  tarball: string;
  size: number;
  files: string[];
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (never synchronously: the server these scripts talk to runs in this process). */
function run(command: string, args: string[], options: { cwd: string; env?: Record<string, string>; timeoutMs: number }): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not exit within ${options.timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The ```js blocks of a markdown file that start with a `// <name>.mjs` line, by name. */
function examples(markdown: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const m of readFileSync(markdown, 'utf8').matchAll(/```js\n(\/\/ (\S+?\.mjs)[^\n]*\n[\s\S]*?)```/g)) found.set(m[2]!, m[1]!);
  return found;
}

const installedVersion = (name: string) =>
  (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

let work: string;
let app: string;
let pack: PackReport;
let srv: TestServer;
let env: Record<string, string>;

/** `new-checkout` on for everyone in production. */
async function checkoutOn(): Promise<void> {
  const created = await api(srv).post('/api/v1/flags', { key: 'new-checkout', kind: 'boolean' });
  expect([201, 409]).toContain(created.status);
  await setState(srv, 'new-checkout', 'production', { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'aviary-consumer-'));
  expect(relative(ROOT, work).startsWith('..')).toBe(true);
  const packed = await run(process.execPath, [join(ROOT, 'sdk/scripts/pack.mjs'), '--out', join(work, 'pack'), '--json'], {
    cwd: ROOT,
    timeoutMs: 90_000,
  });
  expect(packed.code, packed.stderr).toBe(0);
  pack = JSON.parse(packed.stdout.trim().split('\n').at(-1)!) as PackReport;

  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'aviary-consumer', private: true, type: 'module' }, null, 2));
  // What the README tells an app to run, plus what the OpenFeature example and an app's type check need, at the
  // versions this repo installed (their tarballs are in npm's cache; the network is asked only for what is not).
  const deps = ['@openfeature/server-sdk', '@openfeature/core', '@types/node'].map((name) => `${name}@${installedVersion(name)}`);
  const installed = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', pack.tarball, ...deps], {
    cwd: app,
    timeoutMs: 90_000,
  });
  expect(installed.code, installed.stderr).toBe(0);

  srv = await startServer();
  env = { AVIARY_URL: srv.url, AVIARY_SDK_KEY: srv.sdkKeys.production };
}, 200_000);

afterAll(async () => {
  await srv?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed SDK', () => {
  it('holds the compiled SDK with its typings, the browser bundle and the README, and nothing else', () => {
    expect(pack.tarball).toBe(join(work, 'pack', 'aviary-sdk-0.1.0.tgz'));
    for (const file of pack.files) expect(file).toMatch(/^(package\.json|README\.md|dist\/.+\.(js|d\.ts)|dist\/aviary\.browser\.js\.map)$/);
    for (const entry of ['index', 'openfeature', 'otel', 'protocol', 'core/index', 'client', 'websocket', 'websocket-browser']) {
      expect(pack.files).toContain(`dist/${entry}.js`);
      expect(pack.files).toContain(`dist/${entry}.d.ts`);
    }
    expect(pack.files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/aviary.browser.js', 'dist/aviary.browser.js.map']));
    for (const js of pack.files.filter((f) => f.endsWith('.js') && f !== 'dist/aviary.browser.js'))
      expect(pack.files).toContain(js.replace(/\.js$/, '.d.ts'));
  });

  it('resolves to its dist files in an app (no source condition left), and depends on exactly what it imports', async () => {
    const sdkDir = join(app, 'node_modules', '@aviary', 'sdk');
    const manifest = readFileSync(join(sdkDir, 'package.json'), 'utf8');
    expect(manifest).not.toContain('aviary-source');
    const pkg = JSON.parse(manifest) as { dependencies: Record<string, string>; peerDependencies: Record<string, string>; scripts?: unknown };
    expect(Object.keys(pkg.dependencies).sort()).toEqual(['ws']);
    expect(pkg.scripts).toBeUndefined();

    const specifiers = ['@aviary/sdk', '@aviary/sdk/openfeature', '@aviary/sdk/otel', '@aviary/sdk/core', '@aviary/sdk/protocol'];
    const script = `for (const s of ${JSON.stringify(specifiers)}) console.log(import.meta.resolve(s));`;
    const resolved = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app, timeoutMs: 10_000 });
    expect(resolved.code, resolved.stderr).toBe(0);
    const files = resolved.stdout
      .trim()
      .split('\n')
      .map((u) => fileURLToPath(u));
    expect(files.map((f) => relative(sdkDir, f))).toEqual([
      'dist/index.js',
      'dist/openfeature.js',
      'dist/otel.js',
      'dist/core/index.js',
      'dist/protocol.js',
    ]);
    for (const f of files) expect(existsSync(f)).toBe(true);

    // Every package its code names is a dependency or a peer dependency (`ws` is imported through a variable, on
    // Node only, so that bundlers leave it out of browser builds).
    const imported = new Set<string>();
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.js') && entry.name !== 'aviary.browser.js') {
          for (const m of readFileSync(path, 'utf8').matchAll(/(?:from|import\s*\()\s*['"]([^'"./][^'"]*)['"]/g)) imported.add(m[1]!);
        }
      }
    };
    walk(join(sdkDir, 'dist'));
    const allowed = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies)]);
    expect([...imported].filter((s) => !allowed.has(s) && !s.startsWith('node:'))).toEqual([]);
    expect(imported).toContain('@openfeature/server-sdk');
    expect(imported).toContain('@opentelemetry/api');
  });

  it('type-checks an app against its typings (strict, NodeNext, no DOM)', async () => {
    writeFileSync(
      join(app, 'check.ts'),
      [
        "import { createClient, type AviaryClient, type EvaluationDetail } from '@aviary/sdk';",
        "import { AviaryProvider } from '@aviary/sdk/openfeature';",
        "import { OpenFeature } from '@openfeature/server-sdk';",
        "const client: AviaryClient = createClient({ baseUrl: 'http://127.0.0.1:4242', sdkKey: 'key' });",
        "const on: boolean = client.variation('new-checkout', { key: 'user-1', plan: 'pro' }, false);",
        "const label: string = client.variation('banner', { key: 'user-1' }, 'hello');",
        "const detail: EvaluationDetail<boolean> = client.variationDetail('new-checkout', { key: 'user-1' }, false);",
        'await OpenFeature.setProviderAndWait(new AviaryProvider(client));',
        '// @ts-expect-error the typings are real: a context attribute cannot be an object',
        "client.variation('new-checkout', { key: 'user-1', nested: { a: 1 } }, false);",
        'console.log(on, label, detail.reason.kind);',
        '',
      ].join('\n'),
    );
    const tsconfig = {
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'es2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        lib: ['es2022'],
        types: ['node'],
      },
      files: ['check.ts'],
    };
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(tsconfig));
    const tsc = await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', app], { cwd: app, timeoutMs: 60_000 });
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.code).toBe(0);
  });

  it.each([
    ['README.md', join(ROOT, 'README.md')],
    ['sdk/README.md', join(ROOT, 'sdk/README.md')],
  ])("runs %s's Node example as written: it waits for the flags, evaluates, closes and exits by itself", async (name, markdown) => {
    await checkoutOn();
    const code = examples(markdown).get('app.mjs');
    expect(code, `${name} has a js block starting with // app.mjs`).toContain("from '@aviary/sdk'");
    const file = `${name.replace(/\W/g, '-')}-app.mjs`;
    writeFileSync(join(app, file), code!);
    const before = await api(srv).get('/api/v1/flags/new-checkout/environments/production/metrics');
    const counted = (before.body.totals?.on?.evaluations as number | undefined) ?? 0;
    const ran = await run(process.execPath, [file], { cwd: app, env, timeoutMs: 15_000 });
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    expect(ran.stdout).toContain('new-checkout: true');
    // close() sent the counts before the process ended.
    const after = await api(srv).get('/api/v1/flags/new-checkout/environments/production/metrics');
    expect(after.body.totals.on.evaluations).toBeGreaterThan(counted);
  });

  it("runs sdk/README.md's OpenFeature example: ready, evaluates, hears CONFIGURATION_CHANGED for a kill, closes and exits", async () => {
    await checkoutOn();
    const code = examples(join(ROOT, 'sdk/README.md')).get('openfeature.mjs');
    expect(code).toContain("from '@aviary/sdk/openfeature'");
    writeFileSync(join(app, 'openfeature.mjs'), code!);
    const child = spawn(process.execPath, ['openfeature.mjs'], { cwd: app, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no evaluation printed\nstdout: ${stdout}\nstderr: ${stderr}`)), 10_000);
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          if (stdout.includes('\n')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      expect(stdout).toBe('new-checkout: true on DEFAULT\n');
      const killed = await api(srv).post('/api/v1/flags/new-checkout/environments/production/kill');
      expect(killed.status).toBe(200);
      const exit = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
      expect(stderr).toBe('');
      expect(exit).toBe(0);
      expect(stdout).toBe('new-checkout: true on DEFAULT\nnew-checkout is now: false\n');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
