/**
 * Console sessions on admin routes: a request without a bearer token but with the session cookie is the signed-in
 * person (CONTRACT §14). Writes so authenticated must carry the CSRF token in `X-Aviary-CSRF`; reads need none and
 * change nothing. Decorated as `app.consoleAuth` when OpenID Connect is configured (null otherwise).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { problem, type AviaryError } from '../errors.js';
import type { ChangeFeed } from '../storage/change-feed.js';
import type { Actor } from '../storage/writer.js';
import { csrfMatches, type Session, sessionActor, type SessionStore } from './session-store.js';

/** The header that carries the CSRF token on cookie-authenticated writes. */
export const CSRF_HEADER = 'x-aviary-csrf';

/** Cookie names: `__Host-` prefixed when the console is served over https (Secure, Path=/, no Domain). */
export function cookieNames(secure: boolean): { session: string; csrf: string } {
  const p = secure ? '__Host-' : '';
  return { session: `${p}aviary_session`, csrf: `${p}aviary_csrf` };
}

/** The value of cookie `name` in a Cookie header, or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export class ConsoleAuth {
  readonly cookies: { session: string; csrf: string };

  constructor(
    readonly sessions: SessionStore,
    private readonly feed: ChangeFeed,
    readonly secure: boolean,
  ) {
    this.cookies = cookieNames(secure);
  }

  /** The session cookie's secret, or undefined. */
  cookieSecret(request: FastifyRequest): string | undefined {
    return readCookie(request.headers.cookie, this.cookies.session) || undefined;
  }

  /** The live session of a request's cookie, or null. */
  async session(request: FastifyRequest): Promise<Session | null> {
    const secret = this.cookieSecret(request);
    return secret === undefined ? null : this.sessions.find(secret);
  }

  /** The person behind a cookie-authenticated admin request, or a 401/403 problem. */
  async actor(request: FastifyRequest, secret: string): Promise<Actor | AviaryError> {
    const session = await this.sessions.find(secret);
    if (!session) {
      // An address over its failed-authentication limit (server/auth/hooks.ts) is refused like one sending bad tokens.
      const limiter = request.server.authLimiter;
      const waitMs = limiter.size === 0 ? 0 : limiter.blockedForMs(request.ip);
      if (waitMs > 0) {
        request.server.prometheus.authRateLimited.inc();
        return problem('too-many-requests', `Too many failed authentications from this address; retry in ${Math.ceil(waitMs / 1000)} s.`);
      }
      this.feed.emit('auth.failure', { ip: request.ip, scope: 'admin', reason: 'invalid' });
      return problem('unauthorized', 'Your console session has ended (signed out or expired); sign in again.');
    }
    if (!SAFE_METHODS.has(request.method) && !csrfMatches(headerValue(request, CSRF_HEADER), session.csrf)) {
      return problem('forbidden', `A write with a console session must carry its CSRF token in the ${CSRF_HEADER} header.`);
    }
    return sessionActor(session);
  }

  /** Sets the session and CSRF cookies (the CSRF one readable by the console's script, the session one not). */
  setCookies(reply: FastifyReply, secret: string, csrf: string, maxAgeMs: number): void {
    const common = `Path=/; SameSite=Lax; Max-Age=${Math.floor(maxAgeMs / 1000)}${this.secure ? '; Secure' : ''}`;
    reply.header('set-cookie', [`${this.cookies.session}=${secret}; HttpOnly; ${common}`, `${this.cookies.csrf}=${csrf}; ${common}`]);
  }

  /** Clears both cookies. */
  clearCookies(reply: FastifyReply): void {
    const common = `Path=/; SameSite=Lax; Max-Age=0${this.secure ? '; Secure' : ''}`;
    reply.header('set-cookie', [`${this.cookies.session}=; HttpOnly; ${common}`, `${this.cookies.csrf}=; ${common}`]);
  }
}

function headerValue(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return typeof v === 'string' ? v : undefined;
}
