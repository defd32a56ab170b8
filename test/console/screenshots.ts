/**
 * `AVIARY_SCREENSHOTS=1 npx vitest run test/console` refreshes docs/screenshots/ from the browser tests (at the
 * viewport each test uses: 1280×800, or a phone's 390×844). Without it, nothing is written.
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';

export const SHOTS = process.env.AVIARY_SCREENSHOTS === '1';
const SHOT_DIR = fileURLToPath(new URL('../../docs/screenshots/', import.meta.url));

export async function shot(p: Page, name: string, fullPage = false): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOT_DIR, { recursive: true });
  await p.screenshot({ path: `${SHOT_DIR}${name}.png`, fullPage });
}
