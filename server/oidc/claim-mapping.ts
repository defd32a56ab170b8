/**
 * Who a person is allowed to be: their role (CONTRACT §14) from a claim of their ID token (or userinfo), mapped by
 * configuration. Pure: no I/O, so the mapping is unit-tested on its own (test/oidc/claim-mapping.test.ts).
 *
 * `AVIARY_OIDC_ROLE_MAP` is a comma-separated list of `<claim value>=<role>[:<env>+<env>...]`, e.g.
 * `aviary-admins=admin,sre=oncall,dev=editor:staging+development`. A person whose claim holds several mapped values
 * gets the most powerful role among them (admin > editor > oncall > viewer); environments of the rules that gave that
 * role are merged (a rule without environments means all). Nothing mapped: `AVIARY_OIDC_DEFAULT_ROLE`, or refusal.
 */
import type { Role } from '../storage/writer.js';

export const ROLES: readonly Role[] = ['admin', 'editor', 'oncall', 'viewer'];
const RANK: Record<Role, number> = { admin: 4, editor: 3, oncall: 2, viewer: 1 };

/** One mapping: a claim value → a role, optionally limited to environments (null: all). */
export interface RoleRule {
  value: string;
  role: Role;
  environments: string[] | null;
}

/** The role claim's name, its rules, and what a person with no mapped value gets (null: refused). */
export interface RoleMapping {
  claim: string;
  rules: RoleRule[];
  defaultRole: Role | null;
}

/** What a person may do, or why they may not sign in. */
export type Grant = { role: Role; environments: string[] | null } | { refused: string };

const isRole = (s: string): s is Role => (ROLES as readonly string[]).includes(s);

/** Parses `AVIARY_OIDC_ROLE_MAP`; throws a message naming the variable and the bad entry. */
export function parseRoleMap(raw: string, variable = 'AVIARY_OIDC_ROLE_MAP'): RoleRule[] {
  const rules: RoleRule[] = [];
  for (const entry of raw.split(',')) {
    const e = entry.trim();
    if (e === '') continue;
    const eq = e.lastIndexOf('=');
    const value = eq > 0 ? e.slice(0, eq).trim() : '';
    const [role = '', envs, extra] = (eq > 0 ? e.slice(eq + 1) : '').split(':').map((s) => s.trim());
    if (value === '' || !isRole(role) || extra !== undefined) {
      throw new Error(`${variable}: ${JSON.stringify(e)} is not <claim value>=<admin|editor|oncall|viewer>[:<env>+<env>]`);
    }
    let environments: string[] | null = null;
    if (envs !== undefined) {
      environments = envs.split('+').map((s) => s.trim());
      if (environments.some((x) => !/^[a-z0-9][a-z0-9_-]*$/.test(x)))
        throw new Error(`${variable}: ${JSON.stringify(e)} names an environment that is not a valid environment key`);
    }
    rules.push({ value, role, environments });
  }
  return rules;
}

/** Parses a role name (`AVIARY_OIDC_DEFAULT_ROLE`); empty → null (refuse people nothing maps). */
export function parseDefaultRole(raw: string | undefined, variable = 'AVIARY_OIDC_DEFAULT_ROLE'): Role | null {
  const v = (raw ?? '').trim();
  if (v === '' || v === 'none') return null;
  if (!isRole(v)) throw new Error(`${variable} must be admin, editor, oncall, viewer or none, got ${JSON.stringify(raw)}`);
  return v;
}

/**
 * The values of the role claim: a string, a list of strings, or a space/comma separated string. A dotted claim name
 * (`realm_access.roles`, as Keycloak nests roles) is followed into nested objects.
 */
export function claimValues(claims: Record<string, unknown>, claim: string): string[] {
  let v: unknown = claims[claim];
  if (v === undefined && claim.includes('.')) {
    v = claim.split('.').reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), claims);
  }
  if (typeof v === 'string') return v.split(/[\s,]+/).filter((s) => s !== '');
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

/** The grant of a person whose claims are `claims`. */
export function grantFor(claims: Record<string, unknown>, mapping: RoleMapping): Grant {
  const values = new Set(claimValues(claims, mapping.claim));
  const matched = mapping.rules.filter((r) => values.has(r.value));
  if (matched.length === 0) {
    if (mapping.defaultRole) return { role: mapping.defaultRole, environments: null };
    return { refused: `none of the values of the "${mapping.claim}" claim is mapped to a role` };
  }
  const best = matched.reduce((a, r) => (RANK[r.role] > RANK[a.role] ? r : a));
  const top = matched.filter((r) => r.role === best.role);
  if (top.some((r) => r.environments === null)) return { role: best.role, environments: null };
  const environments = [...new Set(top.flatMap((r) => r.environments ?? []))].sort();
  return { role: best.role, environments };
}
