/** Builds the SDK's browser bundle (`sdk/dist/aviary.browser.js`) when it is missing or older than the SDK's sources. */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SDK_DIR = fileURLToPath(new URL('../../sdk/', import.meta.url));
export const SDK_BUNDLE = join(SDK_DIR, 'dist', 'aviary.browser.js');

function newest(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return path.endsWith('.ts') || path.endsWith('.mjs') || path.endsWith('.json') ? st.mtimeMs : 0;
  return Math.max(
    0,
    ...readdirSync(path)
      .filter((n) => n !== 'dist' && n !== 'node_modules')
      .map((n) => newest(join(path, n))),
  );
}

/** Returns the bundle's path, building it first if needed (the build writes atomically: parallel callers are safe). */
export function ensureSdkBundle(): string {
  if (!existsSync(SDK_BUNDLE) || statSync(SDK_BUNDLE).mtimeMs < newest(SDK_DIR)) {
    execFileSync(process.execPath, [join(SDK_DIR, 'scripts', 'bundle.mjs')], { stdio: 'ignore' });
  }
  return SDK_BUNDLE;
}
