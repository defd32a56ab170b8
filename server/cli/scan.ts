/**
 * `aviary scan <dir>`: where a source tree uses flags (CONTRACT §15, issue 16 "code references").
 *
 * Finds, line by line:
 * - calls whose first string argument is a flag key: `variation`, `variationDetail` (Aviary SDKs) and the OpenFeature
 *   evaluation methods in the spellings their SDKs use: `getBooleanValue`/`getStringValue`/`getNumberValue`/
 *   `getObjectValue`, `getBooleanDetails`, `getBooleanValueDetails`, ... (JavaScript, Java, Kotlin, C# `GetBooleanValue`), `get_boolean_value`
 *   (Python), `fetch_boolean_value` (Ruby), `BooleanValue(ctx, "key", ...)` (Go: one argument may come first);
 * - plain string literals ('…', "…", `…`) equal to a known flag key (known: the server's flags, or `--keys <file>`).
 * It reports, per known flag, every place it is used (file:line, and whether it was a call or a plain string), the
 * known flags referenced nowhere, and keys passed to those calls that are not known flags.
 *
 * The walk respects `.gitignore` files (the root's and nested ones, each relative to its own directory; a deeper file
 * may re-include what a shallower one ignored) and always skips `.git` and `node_modules`, files over 2 MiB and
 * binary files (a NUL byte in the first 8 KiB). Symbolic links are not followed.
 *
 * Exit codes: 0 the scan ran; 2 bad usage (no such directory, unreadable keys file); 3 no admin token (when the known
 * keys come from the server) or a rejected one; 5 the server is unreachable; 8 with `--check`, when a known flag is
 * referenced nowhere.
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { type Command, Option } from 'commander';
import ignore, { type Ignore } from 'ignore';
import { createApiClient } from '@aviary/api-client';

/** `--check` found a known flag referenced nowhere. */
export const SCAN_UNREFERENCED_EXIT = 8;

const MAX_BYTES = 2 * 1024 * 1024;
const ALWAYS_SKIPPED = new Set(['.git', 'node_modules']);

export interface Reference {
  file: string;
  line: number;
  column: number;
  kind: 'call' | 'string';
  /** The function called (`kind: 'call'`). */
  call?: string;
}

export interface ScanResult {
  root: string;
  filesScanned: number;
  filesSkipped: number;
  /** Known flags and where they are used (every known flag is a member; [] when unused). */
  flags: Record<string, Reference[]>;
  /** Known flags referenced nowhere. */
  unreferenced: string[];
  /** Keys passed to flag calls that are not known flags. */
  unknown: Record<string, Reference[]>;
}

const CALL =
  /\b(variation|variationDetail|variation_detail|(?:get_?|fetch_?)?(?:boolean|string|number|integer|int|float|double|object)_?(?:value(?:_?details)?|details))\s*\(\s*(?:[A-Za-z_$][\w$.]*\s*,\s*)?(['"`])((?:(?!\2)[^\\\n])+)\2/gi;
const STRING = /(['"`])((?:(?!\1)[^\\\n])+)\1/g;

/** Scans one file's text. */
export function scanText(file: string, text: string, known: ReadonlySet<string>, into: ScanResult): void {
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.length > 10_000) continue; // minified or generated: no readable reference
    const calls = new Set<number>();
    for (const m of line.matchAll(CALL)) {
      const key = m[3]!;
      const column = m.index! + m[0].length - key.length; // 1-based column of the key's first character
      calls.add(column - 1);
      const ref: Reference = { file, line: i + 1, column, kind: 'call', call: m[1]! };
      if (known.has(key)) into.flags[key]!.push(ref);
      else (into.unknown[key] ??= []).push(ref);
    }
    for (const m of line.matchAll(STRING)) {
      const key = m[2]!;
      if (!known.has(key) || calls.has(m.index! + 1)) continue;
      into.flags[key]!.push({ file, line: i + 1, column: m.index! + 2, kind: 'string' });
    }
  }
}

function isBinary(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(8192);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).includes(0);
  } finally {
    closeSync(fd);
  }
}

/** Walks `root` (respecting .gitignore files) and scans every text file for `known` keys and flag calls. */
export function scanTree(root: string, known: ReadonlySet<string>): ScanResult {
  const result: ScanResult = { root, filesScanned: 0, filesSkipped: 0, flags: {}, unreferenced: [], unknown: {} };
  for (const k of [...known].sort()) result.flags[k] = [];
  // The .gitignore files in force: each with the directory it is relative to, shallowest first.
  const walk = (dir: string, rules: Array<{ base: string; ig: Ignore }>) => {
    let here = rules;
    try {
      const text = readFileSync(join(dir, '.gitignore'), 'utf8');
      here = [...rules, { base: dir, ig: ignore().add(text) }];
    } catch {
      // no .gitignore here
    }
    const ignored = (path: string, isDir: boolean) => {
      let out = false;
      for (const { base, ig } of here) {
        const rel = relative(base, path).split(sep).join('/') + (isDir ? '/' : '');
        const t = ig.test(rel);
        if (t.ignored) out = true;
        else if (t.unignored) out = false;
      }
      return out;
    };
    const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        if (ALWAYS_SKIPPED.has(e.name) || ignored(path, true)) continue;
        walk(path, here);
      } else if (e.isFile()) {
        if (ignored(path, false)) continue;
        if (statSync(path).size > MAX_BYTES || isBinary(path)) {
          result.filesSkipped++;
          continue;
        }
        result.filesScanned++;
        scanText(relative(root, path).split(sep).join('/'), readFileSync(path, 'utf8'), known, result);
      }
    }
  };
  walk(root, []);
  result.unreferenced = Object.keys(result.flags).filter((k) => result.flags[k]!.length === 0);
  return result;
}

/** Keys from a file: one per line; blank lines and `#` comments ignored. */
export function readKeysFile(file: string): Set<string> {
  return new Set(
    readFileSync(file, 'utf8')
      .split(/\r?\n/)
      .map((l) => l.replace(/#.*/, '').trim())
      .filter((l) => l !== ''),
  );
}

function describe(r: ScanResult): string {
  const lines: string[] = [];
  for (const [key, refs] of Object.entries(r.flags)) {
    if (refs.length === 0) continue;
    lines.push(`${key}  (${refs.length} reference${refs.length === 1 ? '' : 's'})`);
    for (const ref of refs) lines.push(`  ${ref.file}:${ref.line}  ${ref.kind === 'call' ? `${ref.call}()` : 'string'}`);
  }
  if (r.unreferenced.length) lines.push('', `referenced nowhere (${r.unreferenced.length}): ${r.unreferenced.join(', ')}`);
  const unknown = Object.entries(r.unknown);
  if (unknown.length) {
    lines.push('', 'flag calls with keys that are not known flags:');
    for (const [key, refs] of unknown) lines.push(`  ${key}: ${refs.map((x) => `${x.file}:${x.line}`).join(', ')}`);
  }
  lines.push('', `${r.filesScanned} files scanned, ${r.filesSkipped} skipped (binary or over 2 MiB)`);
  return lines.join('\n');
}

/** Registers `aviary scan` on the program (server/cli/main.ts). */
export function registerScanCommand(program: Command): void {
  program
    .command('scan <dir>')
    .description('find where a source tree uses flags (respects .gitignore); exit 8 with --check when a known flag is referenced nowhere')
    .addOption(new Option('--keys <file>', 'known flag keys, one per line (default: the live flags of the server)'))
    .option('--check', 'exit 8 when a known flag is referenced nowhere')
    .action(async (dir: string, o: { keys?: string; check?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<{ url: string; token?: string; json?: boolean }>();
      let isDir = false;
      try {
        isDir = statSync(dir).isDirectory();
      } catch {
        // reported below
      }
      if (!isDir) program.error(`error: ${dir}: no such directory`, { exitCode: 2, code: 'aviary.usage' });
      let known: Set<string>;
      if (o.keys !== undefined) {
        try {
          known = readKeysFile(o.keys);
        } catch (e) {
          program.error(`error: --keys ${o.keys}: ${(e as Error).message}`, { exitCode: 2, code: 'aviary.usage' });
        }
      } else {
        if (!g.token) {
          process.stderr.write('error: no admin token: set AVIARY_TOKEN or pass --token (or give the keys with --keys <file>)\n');
          process.exitCode = 3;
          return;
        }
        const token = g.token;
        const api = createApiClient({ baseUrl: g.url, token: () => token, timeoutMs: 10_000 });
        known = new Set((await api.get('/api/v1/flags', {})).flags.map((f) => f.key));
      }
      const result = scanTree(dir, known);
      process.stdout.write(`${g.json ? JSON.stringify(result, null, 2) : describe(result)}\n`);
      if (o.check && result.unreferenced.length > 0) process.exitCode = SCAN_UNREFERENCED_EXIT;
    });
}
