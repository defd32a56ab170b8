/**
 * Roles (CONTRACT §14): who may call which admin operation, in which environment.
 *
 * - `admin`: everything.
 * - `editor`: flags, segments, flag states, kill switches, canaries, schedules, change requests; not tokens, webhooks,
 *   triggers, environments or their settings.
 * - `oncall`: reads everything; kill, revive, kill-all, revive-all, canary pause and rollback, revert; nothing else.
 * - `viewer`: reads everything (secrets are never readable by anyone after creation); changes nothing.
 *
 * `environments` (null: all) limits what an `editor`/`oncall` may change to those environments; reads are never
 * limited. A scoped actor cannot call a write that names no environment (flags and segments, which every environment
 * shares).
 *
 * The rules live in the OpenAPI document: every admin operation declares `x-aviary-roles` (the roles it allows) and
 * `x-aviary-environment` (where the environment it changes is named: `path` (`{env}`), `query` (`?environment=`),
 * `body` (`environment` field), `change-request` (the change request `{id}` names it) or `none`). The server enforces
 * them in one place (server/auth/role-hook.ts); a route without a declaration fails at boot.
 */
import type { Actor, Role } from '../storage/writer.js';
import { loadSpec, type JsonObject, type LoadedSpec, type SpecOperation } from '../openapi/spec.js';

export type { Role } from '../storage/writer.js';

/** The roles, strongest first. */
export const ROLES: readonly Role[] = ['admin', 'editor', 'oncall', 'viewer'];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** Where an operation names the environment it changes. */
export type EnvironmentSource = 'path' | 'query' | 'body' | 'change-request' | 'none';
const ENVIRONMENT_SOURCES: readonly EnvironmentSource[] = ['path', 'query', 'body', 'change-request', 'none'];

/** The OpenAPI extensions that declare an operation's rule. */
export const ROLES_EXTENSION = 'x-aviary-roles';
export const ENVIRONMENT_EXTENSION = 'x-aviary-environment';

/** An operation's access rule, from its declaration in the OpenAPI document. */
export interface OperationRule {
  operationId: string;
  roles: readonly Role[];
  environment: EnvironmentSource;
  /** A GET: reads are open to every role that may call it in every environment. */
  read: boolean;
}

/** True for operations that take an admin token (the document's default security); SDK, OFREP, hooks and ops routes do not. */
export function isAdminOperation(op: SpecOperation, spec: LoadedSpec = loadSpec()): boolean {
  const security = (op.operation.security ?? spec.document.security) as unknown[] | undefined;
  if (!Array.isArray(security)) return false;
  return security.some((s) => s !== null && typeof s === 'object' && 'adminToken' in (s as JsonObject));
}

/** An operation's declared rule; throws when the declaration is missing or malformed (so the server fails at boot). */
export function ruleOf(op: SpecOperation): OperationRule {
  const roles = op.operation[ROLES_EXTENSION];
  const environment = op.operation[ENVIRONMENT_EXTENSION];
  const where = `${op.method.toUpperCase()} ${op.path} (${op.operationId})`;
  if (!Array.isArray(roles) || roles.length === 0 || !roles.every(isRole)) {
    throw new Error(`${where}: the OpenAPI document must declare ${ROLES_EXTENSION} (a non-empty list of ${ROLES.join(', ')})`);
  }
  if (!(roles as Role[]).includes('admin')) throw new Error(`${where}: ${ROLES_EXTENSION} must include admin`);
  if (typeof environment !== 'string' || !(ENVIRONMENT_SOURCES as readonly string[]).includes(environment)) {
    throw new Error(`${where}: the OpenAPI document must declare ${ENVIRONMENT_EXTENSION} (one of ${ENVIRONMENT_SOURCES.join(', ')})`);
  }
  return { operationId: op.operationId, roles: roles as Role[], environment: environment as EnvironmentSource, read: op.method === 'get' };
}

let rulesCache: Map<string, OperationRule> | undefined;

/** Every admin operation's rule by operationId (throws when one is undeclared). */
export function operationRules(spec: LoadedSpec = loadSpec()): Map<string, OperationRule> {
  if (rulesCache && spec === loadSpec()) return rulesCache;
  const rules = new Map<string, OperationRule>();
  for (const op of spec.operations) if (isAdminOperation(op, spec)) rules.set(op.operationId, ruleOf(op));
  if (spec === loadSpec()) rulesCache = rules;
  return rules;
}

/** An actor's role: tokens made before roles existed (role null) and actors without one are `admin`. */
export function roleOf(actor: Pick<Actor, 'role'>): Role {
  return actor.role ?? 'admin';
}

/** The environments an actor may change; null: all. Admins and viewers are never scoped (viewers change nothing). */
export function scopeOf(actor: Pick<Actor, 'role' | 'environments'>): readonly string[] | null {
  const role = roleOf(actor);
  if (role !== 'editor' && role !== 'oncall') return null;
  return actor.environments ?? null;
}

/** What {@link decide} answers. */
export type Decision = { allowed: true } | { allowed: false; detail: string };

/**
 * Whether `actor` may perform `operationId` in `environment` (the environment the request changes; null or
 * undefined when it names none). The ONE function that decides: the role hook and `GET /api/v1/me` use it.
 */
export function decide(actor: Pick<Actor, 'role' | 'environments'>, operationId: string, environment?: string | null): Decision {
  const rule = operationRules().get(operationId);
  if (!rule) return { allowed: false, detail: `Unknown operation ${operationId}.` };
  return decideRule(actor, rule, environment);
}

/** {@link decide} with the rule at hand. */
export function decideRule(actor: Pick<Actor, 'role' | 'environments'>, rule: OperationRule, environment?: string | null): Decision {
  const role = roleOf(actor);
  if (!rule.roles.includes(role)) {
    return {
      allowed: false,
      detail: `Role "${role}" may not call ${rule.operationId}; it needs ${listRoles(rule.roles)}.`,
    };
  }
  if (rule.read) return { allowed: true };
  const scope = scopeOf(actor);
  if (scope === null) return { allowed: true };
  if (rule.environment === 'none') {
    return {
      allowed: false,
      detail: `${rule.operationId} changes every environment; a ${role} limited to ${listEnvironments(scope)} may not call it (an unscoped ${listRoles(rule.roles.filter((r) => r === 'admin' || r === role))} may).`,
    };
  }
  if (typeof environment !== 'string' || !scope.includes(environment)) {
    return {
      allowed: false,
      detail: `This ${role} may change ${listEnvironments(scope)} only${typeof environment === 'string' ? `, not "${environment}"` : ''}; ${rule.operationId} in another environment needs an unscoped ${role} or admin.`,
    };
  }
  return { allowed: true };
}

/** The operations an actor may call in at least one environment (what `GET /api/v1/me` lists), sorted. */
export function allowedOperations(actor: Pick<Actor, 'role' | 'environments'>): string[] {
  const scope = scopeOf(actor);
  const out: string[] = [];
  for (const rule of operationRules().values()) {
    if (!rule.roles.includes(roleOf(actor))) continue;
    if (!rule.read && scope !== null && (rule.environment === 'none' || scope.length === 0)) continue;
    out.push(rule.operationId);
  }
  return out.sort();
}

function listRoles(roles: readonly Role[]): string {
  const names = roles.map((r) => `"${r}"`);
  return names.length === 1 ? `role ${names[0]}` : `one of the roles ${names.join(', ')}`;
}

function listEnvironments(scope: readonly string[]): string {
  return scope.length === 0 ? 'no environment' : scope.map((e) => `"${e}"`).join(', ');
}

/**
 * The roles table of docs/api.md (between `<!-- roles:begin -->` and `<!-- roles:end -->`), generated from the
 * document's declarations; test/roles/docs.test.ts checks the doc holds exactly this.
 */
export function rolesTable(spec: LoadedSpec = loadSpec()): string {
  const mark = (rule: OperationRule, role: Role) => {
    if (!rule.roles.includes(role)) return '–';
    if (rule.read || (role !== 'editor' && role !== 'oncall')) return 'yes';
    return rule.environment === 'none' ? 'yes (unscoped only)' : 'yes (in scope)';
  };
  const rows = spec.operations
    .filter((op) => isAdminOperation(op, spec))
    .map((op) => {
      const rule = ruleOf(op);
      return `| \`${op.operationId}\` | \`${op.method.toUpperCase()} ${op.path}\` | ${ROLES.map((r) => mark(rule, r)).join(' | ')} | ${rule.read ? '–' : rule.environment} |`;
    });
  return ['| Operation | Route | admin | editor | oncall | viewer | Environment from |', '|---|---|---|---|---|---|---|', ...rows].join('\n');
}
