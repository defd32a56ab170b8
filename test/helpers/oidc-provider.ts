/**
 * A real OpenID provider for tests: `oidc-provider` (a certified implementation) on 127.0.0.1 with an ephemeral port,
 * its development login and consent pages (any password is accepted; the login names the account), accounts with a
 * `groups` claim, and one confidential client whose redirect URI is set once Aviary's address is known.
 *
 *   const op = await startOidcProvider({ accounts: { alice: { email, name, groups: ['sre'] } } });
 *   const srv = await startServer({ oidc: op.settings({ roleMap: 'sre=oncall' }) });
 *   op.registerClient(srv.url);     // redirect URI <srv.url>/auth/oidc/callback
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import { parseDefaultRole, parseRoleMap } from '../../server/oidc/claim-mapping.js';
import { CALLBACK_PATH, type OidcSettings } from '../../server/oidc/oidc-settings.js';

export interface TestAccount {
  email: string;
  name: string;
  groups: string[];
}

export interface TestOidcProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Aviary's OIDC settings for this provider (the public URL is filled in by `registerClient`). */
  settings(options?: { roleMap?: string; defaultRole?: string; sessionIdleMs?: number; sessionMaxMs?: number }): OidcSettings;
  /** Registers the client for Aviary at `publicUrl` and points every settings object handed out at it. */
  registerClient(publicUrl: string): void;
  close(): Promise<void>;
}

export async function startOidcProvider(opts: { accounts: Record<string, TestAccount> }): Promise<TestOidcProvider> {
  const http: Server = createServer();
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const clientId = 'aviary-console';
  const clientSecret = 'aviary-console-secret-0123456789abcdef';
  const handedOut: OidcSettings[] = [];
  let provider: Provider | null = null;
  http.on('request', (req, res) => {
    if (provider) return provider.callback()(req, res);
    res.statusCode = 503;
    res.end('no client registered yet');
  });
  return {
    issuer,
    clientId,
    clientSecret,
    settings(o = {}) {
      const s: OidcSettings = {
        issuer,
        clientId,
        clientSecret,
        // Replaced by registerClient once Aviary listens (the routes read it per request).
        publicUrl: 'http://127.0.0.1:1',
        scopes: 'openid email profile groups',
        displayName: 'Test IdP',
        mapping: { claim: 'groups', rules: parseRoleMap(o.roleMap ?? ''), defaultRole: parseDefaultRole(o.defaultRole) },
        sessionIdleMs: o.sessionIdleMs ?? 3_600_000,
        sessionMaxMs: o.sessionMaxMs ?? 12 * 3_600_000,
      };
      handedOut.push(s);
      return s;
    },
    registerClient(publicUrl) {
      for (const s of handedOut) s.publicUrl = publicUrl;
      provider = new Provider(issuer, {
        clients: [
          {
            client_id: clientId,
            client_secret: clientSecret,
            redirect_uris: [publicUrl + CALLBACK_PATH],
            post_logout_redirect_uris: [`${publicUrl}/`],
            grant_types: ['authorization_code'],
            response_types: ['code'],
          },
        ],
        scopes: ['openid', 'email', 'profile', 'groups'],
        claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
        findAccount: (_ctx, id) => {
          const account = opts.accounts[id];
          if (!account) return undefined;
          return {
            accountId: id,
            claims: () => ({ sub: id, email: account.email, email_verified: true, name: account.name, groups: account.groups }),
          };
        },
        pkce: { required: () => true },
        cookies: { keys: ['aviary-test-cookie-key'] },
        features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
      });
    },
    async close() {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** Cookies per origin, enough for following the sign-in redirects without a browser. */
class CookieJar {
  private readonly jar = new Map<string, Map<string, string>>();
  header(url: string): string {
    return [...(this.jar.get(new URL(url).origin) ?? new Map()).entries()].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  store(url: string, response: Response): void {
    const origin = new URL(url).origin;
    const cookies = this.jar.get(origin) ?? new Map<string, string>();
    this.jar.set(origin, cookies);
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/max-age=0/i.test(line) || value === '') cookies.delete(name);
      else cookies.set(name, value);
    }
  }
  get(url: string, name: string): string | undefined {
    return this.jar.get(new URL(url).origin)?.get(name);
  }
}

/**
 * Signs `login` in through Aviary's `/auth/oidc/login` and the provider's development login and consent forms, with
 * plain HTTP requests, as a browser would. Answers Aviary's cookies (session and CSRF) and the callback's answer.
 */
export async function signInWithoutBrowser(
  aviaryUrl: string,
  login: string,
): Promise<{ session?: string; csrf?: string; final: Response; body: string; aviaryCookies: string[] }> {
  const jar = new CookieJar();
  const aviaryCookies: string[] = [];
  let url = `${aviaryUrl}/auth/oidc/login`;
  let init: RequestInit = {};
  for (let hop = 0; hop < 20; hop++) {
    const response = await fetch(url, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers as Record<string, string>), cookie: jar.header(url) },
    });
    jar.store(url, response);
    if (url.startsWith(aviaryUrl)) aviaryCookies.push(...response.headers.getSetCookie());
    const location = response.headers.get('location');
    if (location && response.status >= 300 && response.status < 400) {
      url = new URL(location, url).href;
      init = {};
      continue;
    }
    const body = await response.text();
    const form = /<form[^>]*action="([^"]+)"[^>]*method="post"[\s\S]*?name="prompt" value="(login|consent)"/.exec(body);
    if (form?.[1] && new URL(url).origin !== aviaryUrl) {
      const fields: Record<string, string> = form[2] === 'login' ? { prompt: 'login', login, password: 'any' } : { prompt: 'consent' };
      url = new URL(form[1], url).href;
      init = { method: 'POST', body: new URLSearchParams(fields).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
      continue;
    }
    return {
      session: jar.get(aviaryUrl, 'aviary_session'),
      csrf: jar.get(aviaryUrl, 'aviary_csrf'),
      final: response,
      body,
      aviaryCookies,
    };
  }
  throw new Error('too many redirects while signing in');
}
