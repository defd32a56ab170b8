/**
 * Who is signed in (`GET /api/v1/me`): a token or a person (OpenID Connect session), the role, and the operations the
 * role allows. The console HIDES what the caller may not do (CONTRACT §14): an action is rendered only when `can` says
 * so; the server refuses it (403) all the same.
 */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { api } from './api.js';

export type Me = Awaited<ReturnType<typeof fetchMe>>;

export const fetchMe = () => api.get('/api/v1/me');

export interface Permissions {
  me: Me | null;
  /** True when the caller may call `operationId` (in `environment`, for an editor/oncall limited to some). */
  can(operationId: string, environment?: string): boolean;
}

/** Allowed: `operationId` is among the caller's operations, and `environment` within its scope when it has one. */
export function permissions(me: Me | null): Permissions {
  const ops = new Set(me?.operations ?? []);
  return {
    me,
    can: (operationId, environment) =>
      ops.has(operationId) && (environment === undefined || me?.environments == null || me.environments.includes(environment)),
  };
}

export const MeContext = createContext<Permissions>(permissions(null));

export const useCan = () => useContext(MeContext).can;
