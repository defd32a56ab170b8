/**
 * Role enforcement for the admin API, in one place (CONTRACT §14; the rules: server/auth/roles.ts).
 *
 * `roleEnforcement(admin)` is called on the admin context before its route plugins register:
 * - an `onRoute` hook finds each route's operation in the OpenAPI document (method and path) and its declared rule
 *   (`x-aviary-roles`, `x-aviary-environment`), and throws when there is none, so the server does not boot with a
 *   route nobody decided the roles of;
 * - a `preValidation` hook (after authentication, before the body is validated or anything is read or changed) finds
 *   the environment the request changes where the operation declares it, and answers 403 problem `forbidden`, naming
 *   the role needed, when `decide` says no.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { problem } from '../errors.js';
import { findOperation } from '../openapi/spec.js';
import { decideRule, roleOf, ruleOf, scopeOf, type OperationRule } from './roles.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's role rule (set by the role-enforcement onRoute hook). */
    aviaryRule?: OperationRule;
  }
}

export function roleEnforcement(admin: FastifyInstance): void {
  admin.addHook('onRoute', (route) => {
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).map((m) => (m === 'HEAD' ? 'GET' : m));
    const rules = methods.map((m) => {
      const op = findOperation(m, route.url);
      if (!op) throw new Error(`${m} ${route.url}: no operation in openapi/openapi.yaml, so no declared roles (x-aviary-roles)`);
      return ruleOf(op);
    });
    if (new Set(rules.map((r) => r.operationId)).size !== 1) throw new Error(`${route.url}: one route, several operations`);
    route.config = { ...(route.config ?? {}), aviaryRule: rules[0]! };
  });
  admin.addHook('preValidation', async (request: FastifyRequest, _reply: FastifyReply) => {
    const rule = request.routeOptions.config.aviaryRule;
    // Unreachable (onRoute refuses such routes), but refusing is the safe answer.
    if (!rule) throw problem('forbidden', 'This route declares no roles.');
    const actor = request.actor;
    if (!actor) throw problem('unauthorized', 'Send an admin token as "Authorization: Bearer <token>".');
    const needsEnvironment = !rule.read && rule.roles.includes(roleOf(actor)) && scopeOf(actor) !== null;
    const environment = needsEnvironment ? await environmentOf(request, rule) : null;
    const decision = decideRule(actor, rule, environment);
    if (!decision.allowed) throw problem('forbidden', decision.detail);
  });
}

/** The environment a request changes, where its operation declares it; null when it names none. */
async function environmentOf(request: FastifyRequest, rule: OperationRule): Promise<string | null> {
  const pick = (source: unknown, name: string) => {
    const v = source !== null && typeof source === 'object' ? (source as Record<string, unknown>)[name] : undefined;
    return typeof v === 'string' ? v : null;
  };
  switch (rule.environment) {
    case 'path':
      return pick(request.params, 'env');
    case 'query':
      return pick(request.query, 'environment');
    case 'body':
      return pick(request.body, 'environment');
    case 'change-request': {
      const id = pick(request.params, 'id');
      const cr = id === null ? null : await request.server.stores.changeRequests.get(id);
      return cr?.environment ?? null;
    }
    case 'none':
      return null;
  }
}
