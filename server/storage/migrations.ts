/**
 * Where the migrations are: `migrations/sqlite/` and `migrations/postgres/` at the repository's (or installed
 * package's) root. Found by walking up from this module, so the sources (server/storage/), a compiled build
 * (server/dist/storage/) and a bundled CLI (one file anywhere below the root) all find the same folders.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function migrationsFolder(dialect: 'sqlite' | 'postgres'): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const candidate = join(dir, 'migrations', dialect);
    if (existsSync(join(candidate, 'meta', '_journal.json'))) return candidate;
    if (dirname(dir) === dir) throw new Error(`cannot find migrations/${dialect}/meta/_journal.json above ${start}`);
  }
}
