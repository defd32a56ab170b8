/** Builds the console into console/dist with Vite's JS API when the build is missing or older than its sources. */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CONSOLE = fileURLToPath(new URL('../../console/', import.meta.url));
// The shared API client and the generated types it is built on are part of the console bundle.
const SHARED = [fileURLToPath(new URL('../../api-client/', import.meta.url)), fileURLToPath(new URL('../../openapi/types.ts', import.meta.url))];

function newest(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((n) => newest(join(path, n))));
}

function fresh(index: string): boolean {
  const sources = Math.max(
    newest(join(CONSOLE, 'src')),
    newest(join(CONSOLE, 'index.html')),
    newest(join(CONSOLE, 'vite.config.ts')),
    ...SHARED.map(newest),
  );
  return existsSync(index) && statSync(index).mtimeMs >= sources;
}

// Test files run in parallel workers: one builds while the others wait, so nobody serves a half-emptied dist.
const LOCK = join(tmpdir(), 'aviary-console-build.lock');

function tryLock(): boolean {
  try {
    mkdirSync(LOCK);
    return true;
  } catch {
    // A lock left by a worker that died mid-build is stale after a minute.
    try {
      if (Date.now() - statSync(LOCK).mtimeMs > 60_000) rmSync(LOCK, { recursive: true, force: true });
    } catch {
      /* gone meanwhile */
    }
    return false;
  }
}

/** Returns the dist directory, building it first if needed. */
export async function ensureConsoleBuilt(): Promise<string> {
  const dist = join(CONSOLE, 'dist');
  const index = join(dist, 'index.html');
  const deadline = Date.now() + 90_000;
  while (!tryLock()) {
    if (Date.now() > deadline) throw new Error(`waited 90 s for ${LOCK}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    if (!fresh(index)) {
      const { build } = await import('vite');
      await build({ configFile: join(CONSOLE, 'vite.config.ts'), logLevel: 'warn' });
    }
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
  return dist;
}
