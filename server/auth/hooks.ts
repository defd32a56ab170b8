/**
 * fastify hooks for the two auth scopes. Route plugins add them to their own encapsulated context:
 *   app.addHook('onRequest', adminAuthHook)   // sets request.actor
 *   app.addHook('onRequest', sdkAuthHook)     // sets request.sdk ({ tokenId, environment })
 * They run on `onRequest`, before the body is parsed, so unauthenticated bodies are never read.
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { problem } from '../errors.js';

// Callback-style hooks: they run on every request, and an async hook costs a promise per request.

/** Requires an admin token; sets `request.actor`. */
export function adminAuthHook(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const result = request.server.auth.admin(request);
  if (result instanceof Error) return done(result);
  request.actor = result;
  done();
}

/**
 * Requires an SDK key; sets `request.sdk`. An `environment` query parameter, if present, must name the key's own
 * environment (an SDK key reads exactly one environment).
 */
export function sdkAuthHook(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
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
