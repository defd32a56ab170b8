/**
 * `GET /sdk/v1/relay` (relay tokens only): the relay's name and the environments it serves with their versions. A relay
 * asks it at start, then opens one `GET /sdk/v1/stream?environment=<env>` per environment (docs/stream-protocol.md).
 */
import type { FastifyPluginAsync } from 'fastify';
import { authFailureLimitHook } from '../auth/hooks.js';
import type { RouteOf } from '../openapi/route-types.js';

export const relayInfoRoute: FastifyPluginAsync<{ environments: () => string[] }> = async (app, options) => {
  app.addHook('onRequest', authFailureLimitHook);
  app.get<RouteOf<'getRelayInfo'>>('/relay', async (request) => {
    const token = app.auth.relay(request);
    if (token instanceof Error) throw token;
    const scope = token.environments ?? options.environments();
    const environments = scope
      .map((key) => ({ key, version: app.snapshots.version(key) }))
      .filter((e): e is { key: string; version: number } => e.version !== null)
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { name: token.name, tokenId: token.id, environments };
  });
};
