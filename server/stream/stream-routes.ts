/**
 * `GET /sdk/v1/stream` (the websocket), `GET /api/v1/environments/{env}/sdks` (who is connected, what they applied),
 * and `app.receipts` / `app.streamHub` for the routes that change state (the kill route waits on receipts).
 * Registered by buildApp before the admin routes; not encapsulated, so its decorations are visible app-wide.
 */
import type { IncomingMessage } from 'node:http';
import websocket from '@fastify/websocket';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { CloseCode, KEY_PROTOCOL_PREFIX, STREAM_PROTOCOL } from '@aviary/sdk/protocol';
import { adminAuthHook, authFailureLimitHook } from '../auth/hooks.js';
import { problem, PROBLEM_BASE, problemDocument, sendProblem } from '../errors.js';
import { apiTime, apiTimeOrNull } from '../openapi/time.js';
import type { Receipts } from '../app.js';
import { ClusterPresence } from '../cluster/presence.js';
import { StreamHub, type HubOptions } from './stream-hub.js';

declare module 'fastify' {
  interface FastifyInstance {
    streamHub: StreamHub;
  }
}

/** Options of the stream plugin (tests shorten the heartbeat and the slow-consumer bound). */
export type StreamPluginOptions = HubOptions;

const STREAM_PATH = '/sdk/v1/stream';

/** Whether node handed this request over as an upgrade (`Connection: upgrade` with an `Upgrade` header). */
function isUpgrade(headers: IncomingMessage['headers']): boolean {
  return headers.upgrade !== undefined && /\bupgrade\b/i.test(headers.connection ?? '');
}

const plugin: FastifyPluginAsync<StreamPluginOptions> = async (app: FastifyInstance, options) => {
  const hub = new StreamHub(app.snapshots, {
    now: app.now,
    ...(app.store.dialect === 'postgres' ? { behind: (env: string) => void app.follower.catchUp(env) } : {}),
    ...options,
  });
  app.decorate('streamHub', hub);
  // Replicas (PostgreSQL): receipts and the SDK list cover the SDKs of every replica (server/cluster/presence.ts).
  const presence = app.store.dialect === 'postgres' ? new ClusterPresence(app.store, hub, app.replicaId, { log: app.log }) : null;
  const receipts: Receipts = {
    waitFor: (env: string, version: number, timeoutMs: number) =>
      presence ? presence.waitFor(env, version, timeoutMs) : hub.waitFor(env, version, timeoutMs),
  };
  if (!app.hasDecorator('receipts')) app.decorate('receipts', receipts);
  else app.receipts = receipts;
  if (presence) {
    app.addHook('onReady', async () => presence.start());
    app.addHook('preClose', async () => presence.stop());
  }

  const onChange = ({ environment, delta }: { environment: string; delta: Parameters<StreamHub['publish']>[1] }) => hub.publish(environment, delta);
  const onRevoked = ({ tokenId, expired }: { tokenId: string; expired?: boolean }) => hub.revokeToken(tokenId, expired === true);
  const onReset = ({ environment }: { environment: string }) => hub.reset(environment);
  app.changeFeed.on('change', onChange);
  app.changeFeed.on('token.revoked', onRevoked);
  app.changeFeed.on('environment.reset', onReset);
  app.addHook('preClose', async () => {
    app.changeFeed.off('change', onChange);
    app.changeFeed.off('token.revoked', onRevoked);
    app.changeFeed.off('environment.reset', onReset);
    // While it closes, fastify answers every request 503 before any hook runs. For an upgrade request (an SDK
    // reconnecting at once after the goodbye) nothing ends the socket after that answer, and the client's FIN only
    // half-closes it: the server's close would wait for it until the drain timeout, exit 1 and leave the database
    // marked as uncleanly stopped. Listeners run in order, so this one ends the socket after the 503 is written.
    app.server.on('upgrade', (_request, socket) => socket.end(() => socket.destroy()));
    await hub.close();
  });

  // @fastify/websocket hooks every route of the context it is registered in (an onRequest hook and a handler wrapper);
  // in its own encapsulated context only the stream route pays for them, not every HTTP request (the SDK hot path).
  let websocketServer: FastifyInstance['websocketServer'] | undefined;
  await app.register(async (ws) => {
    await ws.register(websocket, {
      options: {
        // Compression costs ~300 KB of zlib state per connection in the worst case; deltas are small.
        perMessageDeflate: false,
        maxPayload: 64 * 1024,
        // Echo the protocol version, never the subprotocol that carries a browser's SDK key.
        handleProtocols: (protocols) => (protocols.has(STREAM_PROTOCOL) ? STREAM_PROTOCOL : false),
      },
    });
    websocketServer = ws.websocketServer;
    // The key is checked in the handler, after the upgrade; an address over its failed-authentication limit is refused
    // (429) before it, like every route that takes a token. After @fastify/websocket's own onRequest hook, which marks
    // the request as an upgrade so that its onResponse hook closes the socket the 429 was written to.
    ws.addHook('onRequest', authFailureLimitHook);

    ws.route<{ Querystring: { since?: string } }>({
      method: 'GET',
      url: STREAM_PATH,
      // A plain GET (no upgrade): say what this is, as a problem document.
      handler: async (request, reply) =>
        reply
          .code(426)
          .header('upgrade', 'websocket')
          .type('application/problem+json')
          .send({
            type: `${PROBLEM_BASE}upgrade-required`,
            title: 'Upgrade required',
            status: 426,
            detail: 'GET /sdk/v1/stream is a websocket: send an Upgrade request (see docs/stream-protocol.md).',
            instance: request.url,
          }),
      wsHandler: (socket, request) => {
        // Browsers cannot read the HTTP status of a refused upgrade, so authentication failures are reported after
        // the upgrade, with a final close code (4001/4003) every client can see and will not retry.
        const principal = app.auth.sdk(request);
        if (principal instanceof Error) {
          const forbidden = principal.statusCode === 403;
          hub.reject(socket, forbidden ? CloseCode.FORBIDDEN : CloseCode.UNAUTHORIZED, forbidden ? 'forbidden' : 'unauthorized', principal.message);
          return;
        }
        const raw = request.query.since;
        const since = raw !== undefined && /^\d{1,15}$/.test(raw) ? Number(raw) : undefined;
        hub.accept(socket, principal, since, request.ip);
      },
    });
  });
  // The ws server, app-wide (operators' tooling and tests reach connected sockets through it).
  app.decorate('websocketServer', websocketServer!);
  // @fastify/websocket routes every upgrade request through the app (registered in its own context above, so that
  // its hooks run on the stream route alone). An upgrade that reaches any other route is answered here, before the
  // route runs: a 404 problem, and the socket closed after it (an upgraded socket is no keep-alive connection).
  app.addHook('onRequest', (request, reply, done) => {
    if (request.headers.upgrade === undefined || request.routeOptions.url === STREAM_PATH || !isUpgrade(request.headers)) return done();
    const instance = request.url.split('?', 1)[0]!;
    reply.raw.once('finish', () => request.raw.socket.destroy());
    sendProblem(
      reply.header('connection', 'close'),
      problemDocument('not-found', `No websocket at this path; the stream is GET ${STREAM_PATH} (see docs/stream-protocol.md).`, { instance }),
    );
  });

  await app.register(async (admin) => {
    admin.addHook('onRequest', adminAuthHook);
    admin.get<{ Params: { env: string } }>('/api/v1/environments/:env/sdks', async (request) => {
      const env = request.params.env;
      const version = app.snapshots.version(env);
      if (version === null) throw problem('not-found', `No environment "${env}".`);
      // Times in RFC 3339, like every time the API answers (server/openapi/time.ts); the hub keeps epoch ms.
      return {
        environment: env,
        version,
        items: (presence ? await presence.list(env) : hub.list(env)).map((s) => ({
          ...s,
          connectedAt: apiTime(s.connectedAt),
          appliedAt: apiTimeOrNull(s.appliedAt),
        })),
      };
    });
  });
};

/** Not encapsulated (fastify-plugin): `streamHub`, `receipts` and the upgrade hook belong to the app it is registered on. */
export const streamRoutes = fp(plugin, { name: 'aviary-stream' });
/** The key subprotocol prefix, re-exported for tests of browser-style auth. */
export { KEY_PROTOCOL_PREFIX };
