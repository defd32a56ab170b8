/**
 * fastify hooks for the two auth scopes. Route plugins add them to their own encapsulated context:
 *   app.addHook('onRequest', adminAuthHook)   // sets request.actor
 *   app.addHook('onRequest', sdkAuthHook)     // sets request.sdk ({ tokenId, environment })
 * They run on `onRequest`, before the body is parsed, so unauthenticated bodies are never read. Each first checks the
 * address's failed-authentication limit (`app.authLimiter` from the ops plugin): over it, a request without valid
 * credentials gets 429 with Retry-After for the price of one hash, while one with valid credentials goes on (others
 * failing from a shared NAT, or an attacker naming your address, must not lock out a kill switch). Only the routes
 * that take a token pay for the check. A route that authenticates in its handler (the websocket) adds
 * `authFailureLimitHook` to its context instead.
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { problem, problemDocument, sendProblem } from '../errors.js';
import { bearerSecret, subprotocolSecret } from './authenticate.js';

// Callback-style hooks: they run on every request, and an async hook costs a promise per request.

/** Answers 429 when the request's address failed authentication too often; true when it did (the hook stops there). */
function refusedForFailures(request: FastifyRequest, reply: FastifyReply): boolean {
  const limiter = request.server.authLimiter;
  if (limiter.size === 0) return false;
  const waitMs = limiter.blockedForMs(request.ip);
  if (waitMs <= 0) return false;
  // Valid credentials are never refused for others' failures. Guessing stays hopeless: secrets are 256-bit random
  // (configured ones at least 16 characters), and a blocked address pays one hash per guess, nothing more.
  const secret = bearerSecret(request) ?? subprotocolSecret(request);
  if (secret !== undefined && request.server.stores.tokens.authenticate(secret) !== null) return false;
  // A console session cookie (and no token) is checked in the admin hook, which refuses an unknown one with 429 here
  // too (server/oidc/console-auth.ts): a person signed in must not be locked out of a kill switch either.
  if (secret === undefined && request.server.consoleAuth?.cookieSecret(request) !== undefined) return false;
  request.server.prometheus.authRateLimited.inc();
  const seconds = Math.ceil(waitMs / 1000);
  reply.header('retry-after', String(seconds));
  const instance = request.url.split('?')[0];
  sendProblem(
    reply,
    problemDocument(
      'too-many-requests',
      `Too many failed authentications from this address (${limiter.limit} per ${limiter.windowMs / 1000} s); retry in ${seconds} s.`,
      instance ? { instance } : {},
    ),
  );
  return true;
}

/** Refuses (429) an address over its failed-authentication limit; for routes that authenticate in their handler. */
export function authFailureLimitHook(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  if (!refusedForFailures(request, reply)) done();
}

/**
 * Requires an admin token, or (when OpenID Connect is configured) a console session cookie, whose writes must carry
 * the CSRF header (server/oidc/console-auth.ts); sets `request.actor`. A bearer token wins over a cookie.
 */
export function adminAuthHook(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  if (refusedForFailures(request, reply)) return;
  const consoleAuth = request.server.consoleAuth;
  if (consoleAuth !== null && request.headers.authorization === undefined) {
    const secret = consoleAuth.cookieSecret(request);
    if (secret !== undefined) {
      consoleAuth.actor(request, secret).then((result) => {
        if (result instanceof Error) {
          if (result.problem === 'too-many-requests')
            reply.header('retry-after', String(Math.max(1, Math.ceil(request.server.authLimiter.blockedForMs(request.ip) / 1000))));
          return done(result);
        }
        request.actor = result;
        done();
      }, done);
      return;
    }
  }
  const result = request.server.auth.admin(request);
  if (result instanceof Error) return done(result);
  request.actor = result;
  done();
}

/**
 * Requires an SDK key; sets `request.sdk`. An `environment` query parameter, if present, must name the key's own
 * environment (an SDK key reads exactly one environment).
 */
export function sdkAuthHook(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  if (refusedForFailures(request, reply)) return;
  const result = request.server.auth.sdk(request);
  if (result instanceof Error) return done(result);
  const wanted = (request.query as Record<string, unknown> | undefined)?.environment;
  if (typeof wanted === 'string' && wanted !== result.environment) {
    request.server.changeFeed.emit('auth.failure', { ip: request.ip, scope: 'sdk', reason: 'wrong-environment' });
    return done(problem('forbidden', `This SDK key reads environment "${result.environment}", not "${wanted}".`));
  }
  request.sdk = result;
  done();
}
