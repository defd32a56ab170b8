/** The role a person gets from their claims (server/oidc/claim-mapping.ts) and the OIDC settings' parsing (server/config.ts). */
import { describe, expect, it } from 'vitest';
import { readConfig } from '../../server/config.js';
import { claimValues, grantFor, parseDefaultRole, parseRoleMap, type RoleMapping } from '../../server/oidc/claim-mapping.js';

const mapping = (map: string, defaultRole: string | undefined = undefined, claim = 'groups'): RoleMapping => ({
  claim,
  rules: parseRoleMap(map),
  defaultRole: parseDefaultRole(defaultRole),
});

describe('role map', () => {
  it('parses values, roles and environments', () => {
    expect(parseRoleMap(' aviary-admins=admin, sre=oncall:production+staging ,dev=editor,')).toEqual([
      { value: 'aviary-admins', role: 'admin', environments: null },
      { value: 'sre', role: 'oncall', environments: ['production', 'staging'] },
      { value: 'dev', role: 'editor', environments: null },
    ]);
    // A claim value may itself contain `=`: the last one separates the role.
    expect(parseRoleMap('team=ops=viewer')).toEqual([{ value: 'team=ops', role: 'viewer', environments: null }]);
  });

  it('refuses bad entries, naming the variable', () => {
    expect(() => parseRoleMap('sre=superuser')).toThrow(/AVIARY_OIDC_ROLE_MAP: "sre=superuser"/);
    expect(() => parseRoleMap('=admin')).toThrow(/AVIARY_OIDC_ROLE_MAP/);
    expect(() => parseRoleMap('sre')).toThrow(/AVIARY_OIDC_ROLE_MAP/);
    expect(() => parseRoleMap('sre=oncall:Prod!')).toThrow(/not a valid environment key/);
    expect(() => parseDefaultRole('root')).toThrow(/AVIARY_OIDC_DEFAULT_ROLE/);
    expect(parseDefaultRole('none')).toBeNull();
    expect(parseDefaultRole('viewer')).toBe('viewer');
  });
});

describe('grant from claims', () => {
  it('maps a group to its role', () => {
    expect(grantFor({ groups: ['staff', 'sre'] }, mapping('aviary-admins=admin,sre=oncall'))).toEqual({ role: 'oncall', environments: null });
  });

  it('takes the most powerful role among the mapped groups', () => {
    const m = mapping('viewers=viewer,sre=oncall,dev=editor');
    expect(grantFor({ groups: ['viewers', 'dev', 'sre'] }, m)).toEqual({ role: 'editor', environments: null });
  });

  it('merges the environments of rules giving the same role; one rule without environments means all', () => {
    expect(grantFor({ groups: ['a', 'b'] }, mapping('a=editor:staging,b=editor:development+staging'))).toEqual({
      role: 'editor',
      environments: ['development', 'staging'],
    });
    expect(grantFor({ groups: ['a', 'b'] }, mapping('a=editor:staging,b=editor'))).toEqual({ role: 'editor', environments: null });
  });

  it('falls back to the default role, or refuses when there is none', () => {
    expect(grantFor({ groups: ['marketing'] }, mapping('sre=oncall', 'viewer'))).toEqual({ role: 'viewer', environments: null });
    expect(grantFor({ groups: ['marketing'] }, mapping('sre=oncall'))).toEqual({
      refused: 'none of the values of the "groups" claim is mapped to a role',
    });
    expect(grantFor({}, mapping('sre=oncall'))).toHaveProperty('refused');
  });

  it('reads string claims, space or comma separated, and nested claims by a dotted name', () => {
    expect(claimValues({ roles: 'a b,c' }, 'roles')).toEqual(['a', 'b', 'c']);
    expect(claimValues({ realm_access: { roles: ['aviary-admins', 7] } }, 'realm_access.roles')).toEqual(['aviary-admins']);
    expect(grantFor({ realm_access: { roles: ['aviary-admins'] } }, mapping('aviary-admins=admin', undefined, 'realm_access.roles'))).toEqual({
      role: 'admin',
      environments: null,
    });
    expect(claimValues({ groups: 42 }, 'groups')).toEqual([]);
  });
});

describe('OIDC settings from the environment', () => {
  const base = {
    AVIARY_OIDC_ISSUER: 'https://id.example.com/realms/main/',
    AVIARY_OIDC_CLIENT_ID: 'aviary',
    AVIARY_OIDC_CLIENT_SECRET: 's3cret',
    AVIARY_PUBLIC_URL: 'https://flags.example.com/',
    AVIARY_OIDC_ROLE_MAP: 'aviary-admins=admin,sre=oncall',
  };

  it('is off unless issuer, client id and secret are set; all of them', () => {
    expect(readConfig({}).oidc).toBeUndefined();
    expect(() => readConfig({ AVIARY_OIDC_ISSUER: 'https://id.example.com' })).toThrow(
      /AVIARY_OIDC_CLIENT_ID and AVIARY_OIDC_CLIENT_SECRET must be set too/,
    );
  });

  it('reads the settings with their defaults', () => {
    expect(readConfig(base).oidc).toEqual({
      issuer: 'https://id.example.com/realms/main',
      clientId: 'aviary',
      clientSecret: 's3cret',
      publicUrl: 'https://flags.example.com',
      scopes: 'openid email profile',
      displayName: 'id.example.com',
      mapping: {
        claim: 'groups',
        rules: [
          { value: 'aviary-admins', role: 'admin', environments: null },
          { value: 'sre', role: 'oncall', environments: null },
        ],
        defaultRole: null,
      },
      sessionIdleMs: 60 * 60_000,
      sessionMaxMs: 12 * 3_600_000,
    });
    const custom = readConfig({
      ...base,
      AVIARY_OIDC_ROLE_CLAIM: 'roles',
      AVIARY_OIDC_NAME: 'Okta',
      AVIARY_OIDC_SCOPES: 'openid email groups',
      AVIARY_SESSION_IDLE_MINUTES: '15',
      AVIARY_SESSION_MAX_HOURS: '8',
    }).oidc;
    expect(custom).toMatchObject({ displayName: 'Okta', scopes: 'openid email groups', sessionIdleMs: 15 * 60_000, sessionMaxMs: 8 * 3_600_000 });
    expect(custom?.mapping.claim).toBe('roles');
  });

  it('needs a public URL and a role map or default role', () => {
    expect(() => readConfig({ ...base, AVIARY_PUBLIC_URL: '' })).toThrow(/AVIARY_PUBLIC_URL must be set/);
    expect(() => readConfig({ ...base, AVIARY_PUBLIC_URL: 'flags.example.com' })).toThrow(/AVIARY_PUBLIC_URL must be an http\(s\) URL/);
    expect(() => readConfig({ ...base, AVIARY_OIDC_ROLE_MAP: '' })).toThrow(/AVIARY_OIDC_ROLE_MAP or AVIARY_OIDC_DEFAULT_ROLE/);
    expect(readConfig({ ...base, AVIARY_OIDC_ROLE_MAP: '', AVIARY_OIDC_DEFAULT_ROLE: 'viewer' }).oidc?.mapping.defaultRole).toBe('viewer');
    expect(() => readConfig({ ...base, AVIARY_SESSION_IDLE_MINUTES: '-1' })).toThrow(/AVIARY_SESSION_IDLE_MINUTES/);
  });
});
