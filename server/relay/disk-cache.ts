/**
 * The relay's disk cache (`AVIARY_RELAY_CACHE`, default ./data/relay): one JSON file per environment holding its
 * snapshot, the keys and the version, written atomically (a temp file, fsync, rename, fsync of the directory) so a
 * relay killed mid-write finds either the previous snapshot or the new one, never half of one. A relay restarted
 * while upstream is down loads these and serves at once.
 */
import { mkdir, open, readdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { CachedEnvironment } from './relay-state.js';

const SUFFIX = '.snapshot.json';
const fileOf = (dir: string, env: string) => join(dir, `${encodeURIComponent(env)}${SUFFIX}`);

/** Writes one environment atomically. */
export async function writeCached(dir: string, env: CachedEnvironment): Promise<void> {
  await mkdir(dir, { recursive: true });
  const target = fileOf(dir, env.snapshot.environment);
  const temp = `${target}.${process.pid}.tmp`;
  const file = await open(temp, 'w');
  try {
    await file.writeFile(JSON.stringify({ format: 1, ...env }));
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, target);
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Every cached environment that parses (a damaged file is skipped and reported through `onError`). */
export async function readCached(dir: string, onError: (file: string, err: unknown) => void): Promise<CachedEnvironment[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(SUFFIX));
  } catch {
    return [];
  }
  const out: CachedEnvironment[] = [];
  for (const name of names) {
    try {
      const v = JSON.parse(await readFile(join(dir, name), 'utf8')) as Partial<CachedEnvironment> & { format?: number };
      const s = v.snapshot;
      if (
        v.format !== 1 ||
        !s ||
        typeof s.environment !== 'string' ||
        !Number.isSafeInteger(s.version) ||
        !Array.isArray(s.flags) ||
        !Array.isArray(s.segments) ||
        !Array.isArray(v.keys)
      )
        throw new Error('not a relay snapshot');
      out.push({ snapshot: s, keys: v.keys, savedAt: Number(v.savedAt) || 0 });
    } catch (err) {
      onError(name, err);
    }
  }
  return out;
}

const SCOPE_FILE = 'relay-scope.json';

/** Saves what upstream said this relay serves (name, environments), atomically. */
export async function writeScope(dir: string, scope: { name: string; environments: string[] }): Promise<void> {
  await mkdir(dir, { recursive: true });
  const target = join(dir, SCOPE_FILE);
  const temp = `${target}.${process.pid}.tmp`;
  const file = await open(temp, 'w');
  try {
    await file.writeFile(JSON.stringify({ format: 1, name: scope.name, environments: scope.environments }));
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, target);
}

/** The saved scope, or null. */
export async function readScope(dir: string): Promise<{ name: string; environments: string[] } | null> {
  try {
    const v = JSON.parse(await readFile(join(dir, SCOPE_FILE), 'utf8')) as { format?: number; name?: unknown; environments?: unknown };
    if (v.format !== 1 || typeof v.name !== 'string' || !Array.isArray(v.environments) || !v.environments.every((e) => typeof e === 'string'))
      return null;
    return { name: v.name, environments: v.environments as string[] };
  } catch {
    return null;
  }
}
