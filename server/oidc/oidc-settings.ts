/** Settings of OpenID Connect sign-in (CONTRACT §14), read from the environment by server/config.ts. */
import type { RoleMapping } from './claim-mapping.js';

/** Everything the OIDC plugin needs; present only when the issuer, client id and client secret are all set. */
export interface OidcSettings {
  /** `AVIARY_OIDC_ISSUER`: the issuer URL (its `/.well-known/openid-configuration` is discovered at boot). */
  issuer: string;
  /** `AVIARY_OIDC_CLIENT_ID`, `AVIARY_OIDC_CLIENT_SECRET`: the client registered at the provider. */
  clientId: string;
  clientSecret: string;
  /** `AVIARY_PUBLIC_URL`: where browsers reach Aviary; the redirect URI is `<public URL>/auth/oidc/callback`. */
  publicUrl: string;
  /** `AVIARY_OIDC_SCOPES`: default `openid email profile`. */
  scopes: string;
  /** `AVIARY_OIDC_NAME`: the provider's name on the sign-in button; default the issuer's host. */
  displayName: string;
  /** `AVIARY_OIDC_ROLE_CLAIM` (default `groups`), `AVIARY_OIDC_ROLE_MAP`, `AVIARY_OIDC_DEFAULT_ROLE`. */
  mapping: RoleMapping;
  /** `AVIARY_SESSION_IDLE_MINUTES` (default 60): a session unused this long ends. */
  sessionIdleMs: number;
  /** `AVIARY_SESSION_MAX_HOURS` (default 12): a session ends this long after sign-in, used or not. */
  sessionMaxMs: number;
}

/** The callback path (register `<AVIARY_PUBLIC_URL>/auth/oidc/callback` as the client's redirect URI). */
export const CALLBACK_PATH = '/auth/oidc/callback';
