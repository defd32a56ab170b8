/**
 * Runs the `aviary` CLI as a child process: the binary is built once per test file with esbuild (one bundled
 * file, like a release build), so each invocation costs a Node start-up rather than a TypeScript compile.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const MAIN = fileURLToPath(new URL('../../server/cli/main.ts', import.meta.url));
// Inside the repo, so the binary resolves the native better-sqlite3 (kept external: a .node file cannot be bundled).
const CACHE = fileURLToPath(new URL('../../node_modules/.cache/', import.meta.url));
let binary: string | null = null;
let buildDir: string | null = null;

/** Builds the CLI binary (call in beforeAll). */
export async function buildCli(): Promise<string> {
  mkdirSync(CACHE, { recursive: true });
  buildDir = mkdtempSync(join(CACHE, 'aviary-cli-'));
  binary = join(buildDir, 'aviary.mjs');
  await build({
    entryPoints: [MAIN],
    outfile: binary,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['aviary-source'],
    external: ['better-sqlite3'],
    logLevel: 'warning',
    // commander is CommonJS; give the ESM bundle a `require` for its Node built-ins.
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  return binary;
}

/** Removes the built binary (call in afterAll). */
export function removeCli(): void {
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `aviary <args>` with only the given AVIARY_* variables (the caller's environment must not leak in). */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    if (!binary) throw new Error('call buildCli() first');
    const child = spawn(process.execPath, [binary, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`aviary ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
