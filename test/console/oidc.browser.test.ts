/**
 * The console with OpenID Connect, in Chromium, against a real provider (oidc-provider on 127.0.0.1): "Sign in with
 * <provider>", the provider's login and consent pages, back to the flag list; who is signed in and their role; what
 * the role may not do is hidden (and refused by the API, CSRF or not); a kill names the person in the audit log;
 * sign-out ends the session at Aviary (the cookie no longer works) and at the provider.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcProvider, type TestOidcProvider } from '../helpers/oidc-provider.js';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser } from './browser.js';
import { ensureConsoleBuilt } from './build-console.js';

const ON = { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } };

let op: TestOidcProvider;
let srv: TestServer;
let browser: Browser;

beforeAll(async () => {
  await ensureConsoleBuilt();
  op = await startOidcProvider({
    accounts: {
      olga: { email: 'olga@example.com', name: 'Olga Oncall', groups: ['sre'] },
      alice: { email: 'alice@example.com', name: 'Alice Admin', groups: ['aviary-admins'] },
    },
  });
  srv = await startServer({ oidc: op.settings({ roleMap: 'aviary-admins=admin,sre=oncall' }) });
  op.registerClient(srv.url);
  const a = api(srv);
  expect((await a.post('/api/v1/flags', { key: 'new-checkout', kind: 'boolean' })).status).toBe(201);
  expect((await a.put('/api/v1/flags/new-checkout/environments/production', ON)).status).toBe(200);
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
  await op?.close();
});

/** A fresh browser context signed in as `login` through the provider; answers the page on the flag list. */
async function signIn(login: string): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(8000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${srv.url}/`);
  await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
  // The provider's own (development) login and consent pages.
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('table.flags').waitFor();
  return { context, page, errors };
}

describe('console sign-in with OpenID Connect', () => {
  it('offers the provider and the token side by side on the sign-in page', async () => {
    const page = await browser.newPage();
    await page.goto(`${srv.url}/`);
    expect(await page.getByRole('link', { name: 'Sign in with Test IdP' }).getAttribute('href')).toBe('/auth/oidc/login?returnTo=%2F');
    expect(await page.getByLabel('Admin token').count()).toBe(1);
    await page.close();
  });

  it('an oncall person: signed in by group, sees who they are, can kill, and never sees what oncall cannot do', async () => {
    const { context, page, errors } = await signIn('olga');
    await expect.poll(() => page.locator('header .who').textContent()).toContain('Olga Oncall');
    expect(await page.locator('header .who-role').textContent()).toBe('oncall');
    // The session cookie is HttpOnly, SameSite=Lax; the page cannot read it, only the CSRF token.
    const cookies = await context.cookies(srv.url);
    const session = cookies.find((c) => c.name === 'aviary_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
    expect(await page.evaluate(() => document.cookie)).not.toContain('aviary_session');

    // Kill switches and the panic button are there for oncall...
    expect(await page.getByRole('button', { name: 'Kill new-checkout in production' }).count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Panic: kill all in production' }).count()).toBe(1);
    // ...targeting, segments and tokens changes are not: hidden, not disabled.
    await page.getByRole('link', { name: 'new-checkout' }).first().click();
    await page.getByRole('heading', { name: 'Targeting in production' }).waitFor();
    expect(await page.getByRole('button', { name: 'Save targeting' }).count()).toBe(0);
    expect(await page.getByText('Your role cannot change targeting in production.').count()).toBe(1);
    expect(await page.getByRole('form', { name: 'Schedule a change' }).count()).toBe(0);
    expect(await page.getByRole('form', { name: 'Create a trigger' }).count()).toBe(0);
    await page.getByRole('link', { name: 'Segments' }).click();
    await page.getByRole('heading', { name: 'Segments' }).waitFor();
    expect(await page.getByRole('button', { name: 'New segment' }).count()).toBe(0);
    await page.getByRole('link', { name: 'Tokens' }).click();
    await page.getByRole('heading', { name: 'Tokens' }).waitFor();
    expect(await page.getByRole('form', { name: 'Create a token' }).count()).toBe(0);
    await page.getByRole('link', { name: 'Webhooks' }).click();
    await page.getByRole('heading', { name: 'Webhooks' }).waitFor();
    expect(await page.getByRole('form', { name: 'Create a webhook' }).count()).toBe(0);

    // The API refuses the hidden write from this very session (with its CSRF token), and any write without the token.
    const refused = await page.evaluate(async () => {
      const csrf = /aviary_csrf=([^;]+)/.exec(document.cookie)?.[1] ?? '';
      const post = (path: string, headers: Record<string, string>, body?: string) =>
        fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, ...(body ? { body } : {}) }).then((r) => r.status);
      return {
        create: await post('/api/v1/flags', { 'x-aviary-csrf': csrf }, JSON.stringify({ key: 'sneaky', kind: 'boolean' })),
        killWithoutCsrf: await post('/api/v1/flags/new-checkout/environments/production/kill', {}, '{"reason":"no csrf"}'),
      };
    });
    expect(refused).toEqual({ create: 403, killWithoutCsrf: 403 });
    expect((await api(srv).get('/api/v1/flags/new-checkout/environments/production')).body).toMatchObject({ enabled: true });

    // The kill itself, through the console (the client sends the CSRF header).
    await page.getByRole('link', { name: 'Flags' }).click();
    await page.getByRole('button', { name: 'Kill new-checkout in production' }).click();
    const dialog = page.getByRole('dialog', { name: 'Kill new-checkout in production' });
    await dialog.getByLabel('Reason').fill('INC-9: checkout errors');
    await dialog.getByRole('button', { name: 'Kill flag' }).click();
    await expect
      .poll(async () => ((await api(srv).get('/api/v1/flags/new-checkout/environments/production')).body as { enabled: boolean }).enabled)
      .toBe(false);
    await dialog.getByRole('button', { name: 'Close' }).click();

    // The audit log names the person: name and email on the page, subject and email in the API.
    await page.getByRole('link', { name: 'Audit log' }).click();
    const row = page.locator('table.audit tbody tr[data-action="flag.kill"]').first();
    await expect.poll(() => row.locator('td.who').textContent()).toContain('Olga Oncall');
    expect(await row.locator('td.who').textContent()).toContain('olga@example.com');
    const audit = (await api(srv).get('/api/v1/audit?action=flag.kill')).body as { entries: { actor: unknown }[] };
    expect(audit.entries[0]?.actor).toEqual({ tokenId: null, name: 'Olga Oncall', kind: 'person', subject: 'olga', email: 'olga@example.com' });

    // Sign-out: the session ends at Aviary (the old cookie is refused) and the browser goes to the provider's logout.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((u) => u.href.startsWith(op.issuer));
    const stale = await fetch(`${srv.url}/api/v1/flags`, { headers: { cookie: `aviary_session=${session!.value}` } });
    expect(stale.status).toBe(401);
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await page.waitForURL(`${srv.url}/`);
    await page.getByRole('link', { name: 'Sign in with Test IdP' }).waitFor();
    expect(errors).toEqual([]);
    await context.close();
  });

  it('an admin person sees the actions oncall does not', async () => {
    const { context, page, errors } = await signIn('alice');
    expect(await page.locator('header .who-role').textContent()).toBe('admin');
    await page.getByRole('link', { name: 'Segments' }).click();
    await page.getByRole('button', { name: 'New segment' }).waitFor();
    await page.getByRole('link', { name: 'Webhooks' }).click();
    await page.getByRole('form', { name: 'Create a webhook' }).waitFor();
    expect(errors).toEqual([]);
    await context.close();
  });
});
