/** Builds the console into console/dist with Vite's JS API when the build is missing or older than its sources. */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CONSOLE = fileURLToPath(new URL('../../console/', import.meta.url));
const SHARED = [fileURLToPath(new URL('../../server/cli/api-client.ts', import.meta.url)), fileURLToPath(new URL('../../server/cli/delivery-receipt.ts', import.meta.url))];

function newest(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((n) => newest(join(path, n))));
}

/** Returns the dist directory, building it first if needed. */
export async function ensureConsoleBuilt(): Promise<string> {
  const dist = join(CONSOLE, 'dist');
  const index = join(dist, 'index.html');
  const sources = Math.max(newest(join(CONSOLE, 'src')), newest(join(CONSOLE, 'index.html')), newest(join(CONSOLE, 'vite.config.ts')), ...SHARED.map(newest));
  if (existsSync(index) && statSync(index).mtimeMs >= sources) return dist;
  const { build } = await import('vite');
  await build({ configFile: join(CONSOLE, 'vite.config.ts'), logLevel: 'warn' });
  return dist;
}
