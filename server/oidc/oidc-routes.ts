/**
 * OpenID Connect sign-in for the console (CONTRACT §14), outside the admin API (`/auth/...`, not in the OpenAPI
 * document: browsers navigate here, scripts use tokens):
 * - `GET /auth/config`: whether OIDC sign-in is offered (public; the console's sign-in page asks).
 * - `GET /auth/oidc/login?returnTo=/path`: starts the authorization code flow with PKCE, state and nonce (kept in
 *   `oidc_logins`, so any replica can finish it) and redirects to the provider.
 * - `GET /auth/oidc/callback`: the redirect URI. openid-client exchanges the code and validates the ID token (issuer,
 *   audience, signature, expiry, nonce); the role comes from the configured claim (claim-mapping.ts); a session row is
 *   created and its secret set in an HttpOnly, SameSite=Lax cookie.
 * - `GET /auth/session`: who is signed in (401 without a live session).
 * - `POST /auth/logout`: revokes the session (CSRF header required) and answers where to send the browser: the
 *   provider's end-session endpoint when it has one (RP-initiated logout), else the console.
 */
import * as client from 'openid-client';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { problem } from '../errors.js';
import { grantFor } from './claim-mapping.js';
import { CSRF_HEADER, type ConsoleAuth } from './console-auth.js';
import { CALLBACK_PATH, type OidcSettings } from './oidc-settings.js';
import { csrfMatches } from './session-store.js';

/** The provider's configuration, discovered on first use (a provider down at boot must not stop the server). */
function lazyDiscovery(settings: OidcSettings): () => Promise<client.Configuration> {
  let pending: Promise<client.Configuration> | null = null;
  const issuer = new URL(settings.issuer);
  // Plain http only to a provider on this machine (development, tests); anything else must be https.
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(issuer.hostname);
  const insecure = issuer.protocol === 'http:' && loopback;
  return () => {
    pending ??= client
      .discovery(issuer, settings.clientId, settings.clientSecret, undefined, insecure ? { execute: [client.allowInsecureRequests] } : {})
      .catch((err: unknown) => {
        pending = null;
        throw err;
      });
    return pending;
  };
}

/** A same-site path to return to after sign-in: `/…` but never `//…` (another host) or a backslash trick. */
export function safeReturnTo(raw: unknown): string {
  return typeof raw === 'string' && /^\/(?![/\\])[^\s\\]*$/.test(raw) && raw.length <= 2000 ? raw : '/';
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function failurePage(reply: FastifyReply, status: number, reason: string) {
  return reply
    .code(status)
    .header('content-security-policy', "default-src 'none'; frame-ancestors 'none'")
    .header('cache-control', 'no-store')
    .type('text/html; charset=utf-8')
    .send(
      `<!doctype html><meta charset="utf-8"><title>Sign-in failed · Aviary</title><h1>Sign-in failed</h1><p role="alert">${escapeHtml(reason)}</p><p><a href="/">Back to Aviary</a></p>`,
    );
}

export interface OidcRoutesOptions {
  settings: OidcSettings | null;
  consoleAuth: ConsoleAuth | null;
}

export async function oidcRoutes(app: FastifyInstance, opts: OidcRoutesOptions): Promise<void> {
  const { settings, consoleAuth } = opts;

  app.get('/auth/config', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    return { oidc: settings ? { name: settings.displayName, loginUrl: '/auth/oidc/login' } : null };
  });

  if (!settings || !consoleAuth) return;
  const config = lazyDiscovery(settings);
  // Read per request: the public URL is fixed in production, but a test learns its server's port only after building it.
  const redirectUri = () => settings.publicUrl + CALLBACK_PATH;
  const sessions = consoleAuth.sessions;

  app.get('/auth/oidc/login', async (request: FastifyRequest<{ Querystring: { returnTo?: string } }>, reply) => {
    let cfg: client.Configuration;
    try {
      cfg = await config();
    } catch (err) {
      request.log.warn({ err }, 'OpenID Connect discovery failed');
      return failurePage(reply, 502, `The identity provider ${settings.issuer} could not be reached; try again, or sign in with an admin token.`);
    }
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    await sessions.saveLogin({ state, nonce, codeVerifier, returnTo: safeReturnTo(request.query.returnTo) });
    const url = client.buildAuthorizationUrl(cfg, {
      redirect_uri: redirectUri(),
      scope: settings.scopes,
      state,
      nonce,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
    });
    return reply.header('cache-control', 'no-store').redirect(url.href, 302);
  });

  app.get(CALLBACK_PATH, async (request: FastifyRequest<{ Querystring: Record<string, string | undefined> }>, reply) => {
    const state = request.query.state;
    if (request.query.error)
      return failurePage(reply, 403, `The identity provider refused the sign-in: ${request.query.error_description ?? request.query.error}.`);
    const login = typeof state === 'string' ? await sessions.takeLogin(state) : null;
    if (!login) return failurePage(reply, 400, 'This sign-in is unknown or took too long (over 10 minutes). Start again.');
    let claims: Record<string, unknown>;
    try {
      const cfg = await config();
      // The URL the provider redirected to, as the provider saw it (the public URL, not this socket's address).
      const currentUrl = new URL(settings.publicUrl + request.url);
      const tokens = await client.authorizationCodeGrant(cfg, currentUrl, {
        pkceCodeVerifier: login.codeVerifier,
        expectedState: login.state,
        expectedNonce: login.nonce,
        idTokenExpected: true,
      });
      const idClaims = tokens.claims();
      if (!idClaims) throw new Error('no ID token');
      claims = { ...idClaims };
      // Many providers put groups and email only in userinfo when an access token is issued.
      if (cfg.serverMetadata().userinfo_endpoint && tokens.access_token) {
        const info = await client.fetchUserInfo(cfg, tokens.access_token, idClaims.sub);
        claims = { ...info, ...idClaims, [settings.mapping.claim]: idClaims[settings.mapping.claim] ?? info[settings.mapping.claim] };
      }
    } catch (err) {
      request.log.warn({ err }, 'OpenID Connect sign-in failed');
      return failurePage(reply, 403, `The sign-in could not be completed: ${(err as Error).message}`);
    }
    const grant = grantFor(claims, settings.mapping);
    const subject = String(claims.sub);
    const email = typeof claims.email === 'string' ? claims.email : null;
    if ('refused' in grant) {
      request.log.warn({ subject, email }, `OpenID Connect sign-in refused: ${grant.refused}`);
      return failurePage(reply, 403, `${email ?? subject} may not use Aviary: ${grant.refused}. Ask an administrator to map your group to a role.`);
    }
    const name = typeof claims.name === 'string' ? claims.name : typeof claims.preferred_username === 'string' ? claims.preferred_username : null;
    const created = await sessions.create({ subject, email, name, role: grant.role, environments: grant.environments });
    consoleAuth.setCookies(reply, created.secret, created.csrf, settings.sessionMaxMs);
    request.log.info({ subject, email, role: grant.role }, 'signed in with OpenID Connect');
    return reply.header('cache-control', 'no-store').redirect(login.returnTo ?? '/', 302);
  });

  app.get('/auth/session', async (request, reply) => {
    reply.header('cache-control', 'no-store');
    const session = await consoleAuth.session(request);
    if (!session) throw problem('unauthorized', 'No console session: sign in.');
    return {
      subject: session.subject,
      email: session.email,
      name: session.name,
      role: session.role,
      environments: session.environments,
      expiresAt: new Date(Math.min(session.expiresAt, session.lastSeenAt + settings.sessionIdleMs)).toISOString(),
    };
  });

  app.post('/auth/logout', async (request, reply) => {
    const session = await consoleAuth.session(request);
    if (!session) {
      consoleAuth.clearCookies(reply);
      return { redirectTo: '/' };
    }
    const header = request.headers[CSRF_HEADER];
    if (!csrfMatches(typeof header === 'string' ? header : undefined, session.csrf)) {
      throw problem('forbidden', `Signing out needs the CSRF token in the ${CSRF_HEADER} header.`);
    }
    await sessions.revoke(session.id);
    consoleAuth.clearCookies(reply);
    request.log.info({ subject: session.subject }, 'signed out');
    let redirectTo = '/';
    try {
      const cfg = await config();
      if (cfg.serverMetadata().end_session_endpoint) {
        redirectTo = client.buildEndSessionUrl(cfg, { client_id: settings.clientId, post_logout_redirect_uri: `${settings.publicUrl}/` }).href;
      }
    } catch {
      // The provider is unreachable: the Aviary session is over all the same.
    }
    return { redirectTo };
  });
}
