/**
 * `POST /hooks/v1/triggers/{secret}` (CONTRACT §13): the URL an alerting system calls. No Authorization header: the
 * secret in the path is the credential, looked up by its SHA-256 (trigger-store.ts) in an `onRequest` hook, before
 * any body is read. A wrong (or deleted) secret answers 404, changes nothing and counts as a failed authentication of
 * the client address (`auth.failure`, scope `trigger`): past the limit of `app.authLimiter` (the same one the token
 * routes use) wrong secrets from that address get 429 with Retry-After, while a valid secret always goes on.
 *
 * This plugin has its own content-type parsers: any content type (or none), up to `HOOK_BODY_LIMIT`, arrives as a
 * string and is never refused for its shape (Alertmanager, Grafana, Datadog and PagerDuty all send JSON, others may
 * not). The action is a normal kill switch (`FlagStateStore.kill`/`revive`, fsynced at once), never held or slowed;
 * each trigger fires at most `rateLimit.limit` times a minute (then 429 with Retry-After).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { problem } from '../errors.js';
import type { TriggerResource } from '../storage/trigger-store.js';
import { summarizePayload } from './payload-summary.js';

/** Largest body a trigger URL reads (1 MiB): an Alertmanager group of many alerts fits. */
export const HOOK_BODY_LIMIT = 1024 * 1024;

export async function triggerHookRoutes(app: FastifyInstance): Promise<void> {
  const { store, rateLimit } = app.triggers;
  const found = new WeakMap<FastifyRequest, TriggerResource>();

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: HOOK_BODY_LIMIT }, (_request, body, done) => done(null, body));

  app.addHook('onRequest', async (request, reply) => {
    const secret = (request.params as { secret?: string }).secret ?? '';
    const trigger = secret === '' ? null : await store.findBySecret(secret);
    if (trigger) {
      found.set(request, trigger);
      return;
    }
    const limiter = app.authLimiter;
    const waitMs = limiter.size === 0 ? 0 : limiter.blockedForMs(request.ip);
    if (waitMs > 0) {
      app.prometheus.authRateLimited.inc();
      const seconds = Math.ceil(waitMs / 1000);
      reply.header('retry-after', String(seconds));
      throw problem('too-many-requests', `Too many failed authentications from this address; retry in ${seconds} s.`);
    }
    app.changeFeed.emit('auth.failure', { ip: request.ip, scope: 'trigger', reason: 'invalid' });
    throw problem('not-found', 'No trigger at this URL (a wrong secret, or the trigger was deleted).');
  });

  app.post<{ Params: { secret: string }; Body: string | undefined }>('/triggers/:secret', { bodyLimit: HOOK_BODY_LIMIT }, async (request, reply) => {
    const trigger = found.get(request)!;
    const waitMs = rateLimit.take(trigger.id, app.now());
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      reply.header('retry-after', String(seconds));
      throw problem('too-many-requests', `Trigger "${trigger.name}" fired ${rateLimit.limit} times this minute; retry in ${seconds} s.`);
    }
    const body = typeof request.body === 'string' ? request.body : undefined;
    const result = await store.fire(trigger, summarizePayload(body));
    // On stable storage now, like the kill switch routes (server/admin/flag-state-routes.ts).
    if (result.changed) app.writer.durableSync();
    return {
      trigger: trigger.name,
      flag: trigger.flag,
      environment: trigger.environment,
      action: trigger.action,
      changed: result.changed,
      environmentVersion: result.environmentVersion,
    };
  });
}
