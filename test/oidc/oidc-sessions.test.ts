/**
 * OpenID Connect sign-in against a real provider (oidc-provider on 127.0.0.1), without a browser: the code flow with
 * PKCE, the role from the `groups` claim, the session cookie on admin routes, CSRF on writes, people in the audit log,
 * sign-out and session expiry. The console's side is in test/console/oidc.browser.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signInWithoutBrowser, startOidcProvider, type TestOidcProvider } from '../helpers/oidc-provider.js';
import { startServer, type TestServer } from '../helpers/server.js';

const ACCOUNTS = {
  alice: { email: 'alice@example.com', name: 'Alice Admin', groups: ['aviary-admins', 'staff'] },
  olga: { email: 'olga@example.com', name: 'Olga Oncall', groups: ['sre'] },
  nobody: { email: 'nobody@example.com', name: 'No Body', groups: ['marketing'] },
};

let op: TestOidcProvider;
let srv: TestServer;
let clock = Date.now();
const IDLE_MS = 30 * 60_000;
const MAX_MS = 8 * 3_600_000;

beforeAll(async () => {
  op = await startOidcProvider({ accounts: ACCOUNTS });
  srv = await startServer({
    // Sessions follow the server's clock; the provider and openid-client use the real one.
    now: () => clock,
    oidc: op.settings({ roleMap: 'aviary-admins=admin,sre=oncall:production', sessionIdleMs: IDLE_MS, sessionMaxMs: MAX_MS }),
  });
  op.registerClient(srv.url);
});

afterAll(async () => {
  await srv?.close();
  await op?.close();
});

const withSession = (session: string, csrf?: string, extra: Record<string, string> = {}) => ({
  cookie: `aviary_session=${session}`,
  ...(csrf ? { 'x-aviary-csrf': csrf } : {}),
  ...extra,
});

async function createFlag(key: string) {
  const r = await fetch(`${srv.url}/api/v1/flags`, {
    method: 'POST',
    headers: { authorization: `Bearer ${srv.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ key, kind: 'boolean' }),
  });
  expect(r.status).toBe(201);
  const on = await fetch(`${srv.url}/api/v1/flags/${key}/environments/production/revive`, {
    method: 'POST',
    headers: { authorization: `Bearer ${srv.adminToken}` },
  });
  expect(on.status).toBe(200);
}

describe('OpenID Connect sign-in', () => {
  it('offers the provider on /auth/config', async () => {
    const r = await fetch(`${srv.url}/auth/config`);
    expect(await r.json()).toEqual({ oidc: { name: 'Test IdP', loginUrl: '/auth/oidc/login' } });
  });

  it('signs a person in with the role of their group; the cookie is HttpOnly and SameSite=Lax', async () => {
    const { session, csrf, final } = await signInWithoutBrowser(srv.url, 'alice');
    expect(session).toBeTruthy();
    expect(csrf).toBeTruthy();
    expect(final.url).toBe(`${srv.url}/`);
    const me = await fetch(`${srv.url}/auth/session`, { headers: withSession(session!) });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ subject: 'alice', email: 'alice@example.com', name: 'Alice Admin', role: 'admin', environments: null });
    // The session is stored by the hash of its secret only.
    const rows = await srv.app.store.all<{ id: string; subject: string }>('SELECT id, subject FROM sessions');
    expect(rows.some((r) => r.id === session)).toBe(false);
    expect(rows.map((r) => r.subject)).toContain('alice');
  });

  it('sets the session cookie HttpOnly, SameSite=Lax, Path=/ (and the CSRF cookie readable)', async () => {
    const { final, aviaryCookies } = await signInWithoutBrowser(srv.url, 'olga');
    expect(final.status).toBe(200);
    const sessionCookie = aviaryCookies.find((c) => c.startsWith('aviary_session='));
    const csrfCookie = aviaryCookies.find((c) => c.startsWith('aviary_csrf='));
    expect(sessionCookie).toMatch(/; HttpOnly; Path=\/; SameSite=Lax; Max-Age=\d+$/);
    // Not https here, so not Secure (a https AVIARY_PUBLIC_URL adds Secure and the __Host- prefix).
    expect(sessionCookie).not.toContain('Secure');
    expect(csrfCookie).toBeDefined();
    expect(csrfCookie).not.toContain('HttpOnly');
  });

  it('starts the code flow with PKCE (S256), state and nonce, kept in the database for any replica', async () => {
    const login = await fetch(`${srv.url}/auth/oidc/login?returnTo=//evil.example/x`, { redirect: 'manual' });
    expect(login.status).toBe(302);
    const auth = new URL(login.headers.get('location')!);
    expect(auth.origin).toBe(op.issuer);
    expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
    expect(auth.searchParams.get('state')).toBeTruthy();
    expect(auth.searchParams.get('nonce')).toBeTruthy();
    expect(auth.searchParams.get('redirect_uri')).toBe(`${srv.url}/auth/oidc/callback`);
    const state = auth.searchParams.get('state')!;
    const row = await srv.app.store.get<{ return_to: string }>('SELECT return_to FROM oidc_logins WHERE state = ?', [state]);
    // An off-site return address is replaced by the console's root.
    expect(row?.return_to).toBe('/');
  });

  it('refuses a person whose groups map to no role, and an unknown state', async () => {
    const { session, final, body } = await signInWithoutBrowser(srv.url, 'nobody');
    expect(session).toBeUndefined();
    expect(final.status).toBe(403);
    expect(body).toContain('nobody@example.com may not use Aviary');
    const forged = await fetch(`${srv.url}/auth/oidc/callback?code=x&state=not-a-state`);
    expect(forged.status).toBe(400);
  });

  it('a session reads and writes the admin API; writes need the CSRF token; the audit log names the person', async () => {
    await createFlag('oidc-checkout');
    const { session, csrf } = await signInWithoutBrowser(srv.url, 'alice');
    const read = await fetch(`${srv.url}/api/v1/flags`, { headers: withSession(session!) });
    expect(read.status).toBe(200);
    const stateUrl = `${srv.url}/api/v1/flags/oidc-checkout/environments/production`;
    const before = await (await fetch(stateUrl, { headers: withSession(session!) })).json();
    expect(before.enabled).toBe(true);

    const kill = (headers: Record<string, string>) =>
      fetch(`${srv.url}/api/v1/flags/oidc-checkout/environments/production/kill`, { method: 'POST', headers });
    const noCsrf = await kill(withSession(session!));
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.headers.get('content-type')).toContain('application/problem+json');
    expect((await noCsrf.json()).detail).toContain('x-aviary-csrf');
    const wrongCsrf = await kill(withSession(session!, 'not-the-token'));
    expect(wrongCsrf.status).toBe(403);
    // Refused writes changed nothing.
    expect(await (await fetch(stateUrl, { headers: withSession(session!) })).json()).toEqual(before);

    const ok = await kill(withSession(session!, csrf));
    expect(ok.status).toBe(200);
    const audit = await fetch(`${srv.url}/api/v1/audit?flag=oidc-checkout&action=flag.kill`, {
      headers: { authorization: `Bearer ${srv.adminToken}` },
    });
    const entry = (await audit.json()).entries[0];
    expect(entry.actor).toEqual({ tokenId: null, name: 'Alice Admin', kind: 'person', subject: 'alice', email: 'alice@example.com' });
    // The token's entry says it is a token.
    const created = await fetch(`${srv.url}/api/v1/audit?flag=oidc-checkout&action=flag.create`, {
      headers: { authorization: `Bearer ${srv.adminToken}` },
    });
    expect((await created.json()).entries[0].actor).toMatchObject({ kind: 'token', subject: null, email: null });
  });

  it('the role from the group claim is enforced: an oncall person may kill in their environment, nothing else', async () => {
    await createFlag('oidc-oncall');
    const { session, csrf } = await signInWithoutBrowser(srv.url, 'olga');
    const me = await (await fetch(`${srv.url}/api/v1/me`, { headers: withSession(session!) })).json();
    expect(me).toMatchObject({ actor: { kind: 'person', subject: 'olga', email: 'olga@example.com' }, role: 'oncall', environments: ['production'] });
    expect(me.operations).toContain('killFlag');
    expect(me.operations).not.toContain('createFlag');
    const create = await fetch(`${srv.url}/api/v1/flags`, {
      method: 'POST',
      headers: withSession(session!, csrf, { 'content-type': 'application/json' }),
      body: JSON.stringify({ key: 'oidc-forbidden', kind: 'boolean' }),
    });
    expect(create.status).toBe(403);
    expect((await create.json()).type).toContain('forbidden');
    expect((await fetch(`${srv.url}/api/v1/flags/oidc-forbidden`, { headers: withSession(session!) })).status).toBe(404);
    const staging = await fetch(`${srv.url}/api/v1/flags/oidc-oncall/environments/staging/kill`, {
      method: 'POST',
      headers: withSession(session!, csrf),
    });
    expect(staging.status).toBe(403);
    const production = await fetch(`${srv.url}/api/v1/flags/oidc-oncall/environments/production/kill`, {
      method: 'POST',
      headers: withSession(session!, csrf),
    });
    expect(production.status).toBe(200);
  });

  it('bearer tokens keep working next to sessions, and win over a cookie', async () => {
    const r = await fetch(`${srv.url}/api/v1/flags`, { headers: { authorization: `Bearer ${srv.adminToken}`, cookie: 'aviary_session=garbage' } });
    expect(r.status).toBe(200);
    const bad = await fetch(`${srv.url}/api/v1/flags`, { headers: { cookie: 'aviary_session=garbage' } });
    expect(bad.status).toBe(401);
  });

  it('sign-out revokes the session: the cookie no longer works; RP-initiated logout at the provider', async () => {
    const { session, csrf } = await signInWithoutBrowser(srv.url, 'alice');
    const refused = await fetch(`${srv.url}/auth/logout`, { method: 'POST', headers: withSession(session!) });
    expect(refused.status).toBe(403);
    expect((await fetch(`${srv.url}/api/v1/flags`, { headers: withSession(session!) })).status).toBe(200);
    const out = await fetch(`${srv.url}/auth/logout`, { method: 'POST', headers: withSession(session!, csrf) });
    expect(out.status).toBe(200);
    const { redirectTo } = (await out.json()) as { redirectTo: string };
    const end = new URL(redirectTo);
    expect(end.origin).toBe(op.issuer);
    expect(end.searchParams.get('post_logout_redirect_uri')).toBe(`${srv.url}/`);
    expect(out.headers.getSetCookie().some((c) => c.startsWith('aviary_session=;') && /Max-Age=0/.test(c))).toBe(true);
    expect((await fetch(`${srv.url}/api/v1/flags`, { headers: withSession(session!) })).status).toBe(401);
    expect((await fetch(`${srv.url}/auth/session`, { headers: withSession(session!) })).status).toBe(401);
  });

  it('a session ends after its idle time, and at its absolute lifetime even when used', async () => {
    const idle = await signInWithoutBrowser(srv.url, 'olga');
    const start = clock;
    try {
      clock = start + IDLE_MS - 1000;
      expect((await fetch(`${srv.url}/api/v1/flags`, { headers: withSession(idle.session!) })).status).toBe(200);
      // Used just now: the idle time starts again.
      clock = start + IDLE_MS + 60_000;
      expect((await fetch(`${srv.url}/api/v1/flags`, { headers: withSession(idle.session!) })).status).toBe(200);
      clock = start + 2 * IDLE_MS + 60_000;
      expect((await fetch(`${srv.url}/api/v1/flags`, { headers: withSession(idle.session!) })).status).toBe(401);

      clock = start;
      const used = await signInWithoutBrowser(srv.url, 'olga');
      for (let t = start; t < start + MAX_MS; t += IDLE_MS / 2) {
        clock = t;
        expect((await fetch(`${srv.url}/api/v1/flags`, { headers: withSession(used.session!) })).status).toBe(200);
      }
      clock = start + MAX_MS;
      expect((await fetch(`${srv.url}/api/v1/flags`, { headers: withSession(used.session!) })).status).toBe(401);
    } finally {
      clock = start;
    }
  });
});

describe('failed-authentication limit with console sessions', () => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startServer({
      oidc: op.settings({ roleMap: 'aviary-admins=admin,sre=oncall:production' }),
      authFailures: { limit: 3, windowMs: 60_000 },
    });
    // The provider's client now redirects to this server (the first one's tests are done).
    op.registerClient(limited.url);
  });
  afterAll(async () => {
    await limited?.close();
  });

  it('an address over the limit is refused (429) for unknown cookies, but a signed-in person keeps working', async () => {
    const { session, csrf } = await signInWithoutBrowser(limited.url, 'olga');
    for (let i = 0; i < 3; i++)
      expect((await fetch(`${limited.url}/api/v1/flags`, { headers: { cookie: `aviary_session=guess-${i}` } })).status).toBe(401);
    const blocked = await fetch(`${limited.url}/api/v1/flags`, { headers: { cookie: 'aviary_session=guess-4' } });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await fetch(`${limited.url}/api/v1/flags`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(429);
    // The person signed in before is not locked out of the kill switch by others' failures.
    expect((await fetch(`${limited.url}/api/v1/flags`, { headers: withSession(session!) })).status).toBe(200);
    const kill = await fetch(`${limited.url}/api/v1/environments/production/kill-all`, { method: 'POST', headers: withSession(session!, csrf) });
    expect(kill.status).toBe(200);
  });
});
