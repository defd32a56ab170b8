import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const coreDir = join(import.meta.dirname, '../../sdk/core');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

const importPattern = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
const allowedPackages = new Set(['murmurhash']);

describe('sdk/core stays pure', () => {
  const files = sourceFiles(coreDir);

  it('has source files to check', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it.each(files.map((f) => [relative(coreDir, f), f]))('%s imports only relative modules and murmurhash', (_name, file) => {
    const text = readFileSync(file, 'utf8');
    const specifiers = [...text.matchAll(importPattern)].map((m) => m[1] ?? m[2] ?? '');
    const offending = specifiers.filter((s) => !s.startsWith('./') && !s.startsWith('../') && !allowedPackages.has(s));
    expect(offending).toEqual([]);
    expect(text).not.toMatch(/\b(process|require|globalThis\.process|Buffer)\b\s*[.(]/);
  });
});
