/**
 * Headless Chromium for the browser tests, through playwright-core (which ships no browser of its own): the system's
 * `/usr/bin/chromium` when the machine has one, otherwise the headless Chromium inside the `@sparticuz/chromium` dev
 * dependency, so `npm install && npm test` needs nothing installed by hand.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser, type Page } from 'playwright-core';

export const SYSTEM_CHROMIUM = '/usr/bin/chromium';

// The same flags for either binary: nothing in the background reaches for the network (the tests run offline), and
// pages keep the browser's real security model. (@sparticuz/chromium's own `args` are made for AWS Lambda: they turn
// off web security and site isolation and force a single process, which would hide CORS and CSP mistakes from the tests.)
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let executable: Promise<string> | undefined;

/** The Chromium binary the tests launch: `/usr/bin/chromium` if present, else the one `@sparticuz/chromium` ships. */
export function chromiumExecutable(): Promise<string> {
  return (executable ??= existsSync(SYSTEM_CHROMIUM) ? Promise.resolve(SYSTEM_CHROMIUM) : packagedChromium());
}

/**
 * Launches Chromium with a locale: by default the one a real user's browser has. Under `LANG=C` the packaged headless
 * shell reports navigator.language as `en-US@posix`, which Intl refuses; `{ lang: 'C' }` gives a page exactly that
 * (the console must cope: test/console/defects.browser.test.ts).
 */
export async function launchBrowser(options: { lang?: string } = {}): Promise<Browser> {
  const lang = options.lang ?? 'en_US.UTF-8';
  const env = { ...process.env, LANG: lang, LC_ALL: lang };
  return chromium.launch({ executablePath: await chromiumExecutable(), headless: true, args: ARGS, env });
}

/**
 * A console page signed in with the server's admin token, on the flag list; `errors` collects the page's uncaught
 * errors and console errors (tests end with `expect(errors).toEqual([])`).
 */
export async function signedInPage(
  browser: Browser,
  srv: { url: string; adminToken: string },
  viewport = { width: 1280, height: 800 },
): Promise<{ page: Page; errors: string[] }> {
  const errors: string[] = [];
  const page = await browser.newPage({ viewport });
  page.setDefaultTimeout(8000);
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  await page.goto(srv.url + '/');
  await page.getByLabel('Admin token').fill(srv.adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('table.flags').waitFor();
  return { page, errors };
}

const LOCK_STALE_MS = 60_000;
const LOCK_WAIT_MS = 120_000;

/**
 * `executablePath()` inflates the packaged binary into the temp directory (about 1.5 s, once per machine) and from
 * then on takes whatever file is there as done. Test files run in parallel processes, so one process inflates while
 * the others wait on a lock directory, and a marker written after a complete inflation of this version tells a
 * finished binary from one that an interrupted run (or another version of the package) left there.
 */
async function packagedChromium(): Promise<string> {
  const { default: packaged } = await import('@sparticuz/chromium');
  const entry = createRequire(import.meta.url).resolve('@sparticuz/chromium');
  const { version } = JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version: string };
  const done = join(tmpdir(), `aviary-sparticuz-chromium-${version}.done`);
  const inflated = () => existsSync(done) && existsSync(join(tmpdir(), 'chromium'));
  if (inflated()) return packaged.executablePath();
  const lock = join(tmpdir(), 'aviary-sparticuz-chromium.lock');
  await acquire(lock);
  try {
    if (!inflated()) {
      // What executablePath() checks for before inflating each archive: gone, so all of them are inflated afresh.
      for (const name of ['chromium', 'fonts', 'libGLESv2.so']) rmSync(join(tmpdir(), name), { recursive: true, force: true });
      writeFileSync(done, await packaged.executablePath());
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
  return packaged.executablePath();
}

async function acquire(lock: string): Promise<void> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(lock);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    // A holder that died leaves its lock behind: inflating never takes this long.
    const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (age > LOCK_STALE_MS) rmSync(lock, { recursive: true, force: true });
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock} (another process inflating @sparticuz/chromium)`);
    await sleep(100);
  }
}
