/**
 * Request authentication: admin routes take an admin token, SDK routes an SDK key of one environment.
 * Both read `Authorization: Bearer <secret>`; SDK routes also accept the key as a websocket subprotocol
 * (`Sec-WebSocket-Protocol: aviary-sdk-key.<key>`), because browsers cannot set headers on a websocket.
 */
import type { FastifyRequest } from 'fastify';
import { KEY_PROTOCOL_PREFIX } from '@aviary/sdk/protocol';
import { problem, type AviaryError } from '../errors.js';
import type { AuthFailureEvent, ChangeFeed } from '../storage/change-feed.js';
import type { Actor } from '../storage/writer.js';
import type { TokenInfo, TokenStore } from './token-store.js';

/** Subprotocol prefix carrying an SDK key on websocket upgrades. */
export const SDK_KEY_SUBPROTOCOL_PREFIX = KEY_PROTOCOL_PREFIX;

/** Who an SDK request is: the token and the one environment it may read. */
export interface SdkPrincipal {
  tokenId: string;
  environment: string;
  /** A client-side (public) key: what it reports is bounded as evidence (CONTRACT §16). */
  clientSide: boolean;
}

/** The bearer secret of a request, or undefined. */
export function bearerSecret(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

/** The SDK key offered as a websocket subprotocol, or undefined. */
export function subprotocolSecret(request: FastifyRequest): string | undefined {
  const header = request.headers['sec-websocket-protocol'];
  if (typeof header !== 'string') return undefined;
  for (const part of header.split(',')) {
    const p = part.trim();
    if (p.startsWith(SDK_KEY_SUBPROTOCOL_PREFIX)) return p.slice(SDK_KEY_SUBPROTOCOL_PREFIX.length);
  }
  return undefined;
}

/** Authentication functions bound to a token store, decorated on the app as `app.auth`. */
export interface Authenticator {
  /** An admin token's actor, or a 401/403 problem. */
  admin(request: FastifyRequest): Actor | AviaryError;
  /** The SDK principal, or a 401/403 problem. Usable from a websocket route's preValidation. */
  sdk(request: FastifyRequest): SdkPrincipal | AviaryError;
}

export function createAuthenticator(tokens: TokenStore, feed: ChangeFeed): Authenticator {
  // One principal per cached token info (which the store shares between requests): nothing allocated per request.
  const principals = new WeakMap<object, SdkPrincipal>();
  const fail = (request: FastifyRequest, scope: AuthFailureEvent['scope'], reason: AuthFailureEvent['reason'], err: AviaryError) => {
    feed.emit('auth.failure', { ip: request.ip, scope, reason });
    return err;
  };
  const check = (request: FastifyRequest, scope: 'admin' | 'sdk', secret: string | undefined): Readonly<TokenInfo> | AviaryError => {
    if (!secret)
      return fail(
        request,
        scope,
        'missing',
        problem('unauthorized', `Send ${scope === 'admin' ? 'an admin token' : 'an SDK key'} as "Authorization: Bearer <token>".`),
      );
    const token = tokens.authenticate(secret);
    if (!token) {
      const revoked = tokens.isRevoked(secret);
      const expired = !revoked && tokens.isExpired(secret);
      return fail(
        request,
        scope,
        revoked || expired ? 'revoked' : 'invalid',
        problem('unauthorized', revoked ? 'This token has been revoked.' : expired ? 'This token has expired.' : 'Unknown token.'),
      );
    }
    return token;
  };
  return {
    admin(request) {
      const token = check(request, 'admin', bearerSecret(request));
      if (token instanceof Error) return token;
      if (token.kind !== 'admin')
        return fail(request, 'admin', 'wrong-kind', problem('forbidden', 'SDK keys cannot use the admin API; use an admin token.'));
      // Role and scope (CONTRACT §14): enforced by server/auth/role-hook.ts.
      return { tokenId: token.id, name: token.name, role: token.role ?? 'admin', environments: token.environments };
    },
    sdk(request) {
      const token = check(request, 'sdk', bearerSecret(request) ?? subprotocolSecret(request));
      if (token instanceof Error) return token;
      if (token.kind !== 'sdk' || !token.environment) {
        return fail(request, 'sdk', 'wrong-kind', problem('forbidden', 'Admin tokens cannot use the SDK API; use an SDK key of the environment.'));
      }
      let principal = principals.get(token);
      if (principal === undefined)
        principals.set(token, (principal = Object.freeze({ tokenId: token.id, environment: token.environment, clientSide: token.clientSide })));
      return principal;
    },
  };
}
