/**
 * `GET /api/v1/events`: the admin side of the change stream, as server-sent events, so the console (or a script)
 * follows every committed change within milliseconds instead of polling. Each replica sends what its change feed
 * emits, which is every change of every replica (they follow one change log, docs/scale-out.md):
 *   event: change        data: {"environment","version","flags":[keys],"segments":[keys]}
 *   event: reset         data: {"environment"}      (this replica reloaded an environment: re-read it)
 *   : heartbeat                                      (every `heartbeatMs`; a client that hears nothing for two of
 *                                                     them knows the stream, or the server, is gone)
 * Events carry keys, never states: the reader re-reads what it shows (with its own token's rights). Writes that bump no
 * environment version (tokens, webhooks) are not in it. Bounded: at most `perToken` open streams per admin token
 * (429 beyond); a stream whose unsent bytes exceed `maxBufferedBytes` is ended (the client reconnects and re-reads);
 * a revoked token's streams end at once; every stream ends when the server closes.
 */
import { PassThrough } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { Change } from '@aviary/sdk/protocol';
import { problemDocument, sendProblem } from '../errors.js';
import { routeSchema } from '../openapi/validation.js';
import type { ChangeEvent } from '../storage/change-feed.js';

export interface AdminEventsOptions {
  /** Heartbeat (SSE comment) interval. Default 15,000 ms. */
  heartbeatMs?: number;
  /** Open streams per admin token (or session). Default 20. */
  perToken?: number;
  /** A stream with more unsent bytes than this is ended. Default 256 KiB. */
  maxBufferedBytes?: number;
}

interface Subscriber {
  owner: string;
  tokenId: string | null;
  out: PassThrough;
  socket: import('node:net').Socket;
}

/** The keys a delta touched, by kind. */
export function touchedKeys(changes: readonly Change[]): { flags: string[]; segments: string[] } {
  const flags = new Set<string>();
  const segments = new Set<string>();
  for (const c of changes) {
    if (c.type === 'flag.upsert') flags.add(c.flag.key);
    else if (c.type === 'flag.delete') flags.add(c.key);
    else if (c.type === 'segment.upsert') segments.add(c.segment.key);
    else if (c.type === 'segment.delete') segments.add(c.key);
  }
  return { flags: [...flags], segments: [...segments] };
}

export const adminEventsRoutes: FastifyPluginAsync<AdminEventsOptions> = async (app, options) => {
  const perToken = options.perToken ?? 20;
  const maxBufferedBytes = options.maxBufferedBytes ?? 256 * 1024;
  const subscribers = new Set<Subscriber>();

  const send = (s: Subscriber, chunk: string) => {
    if (s.out.writableLength > maxBufferedBytes) {
      subscribers.delete(s);
      s.out.destroy();
      return;
    }
    s.out.write(chunk);
  };
  const broadcast = (chunk: string) => {
    for (const s of subscribers) send(s, chunk);
  };
  const onChange = ({ environment, delta }: ChangeEvent) =>
    broadcast(`event: change\ndata: ${JSON.stringify({ environment, version: delta.version, ...touchedKeys(delta.changes) })}\n\n`);
  const onReset = ({ environment }: { environment: string }) => broadcast(`event: reset\ndata: ${JSON.stringify({ environment })}\n\n`);
  const onCreated = ({ environment }: { environment: string }) => broadcast(`event: reset\ndata: ${JSON.stringify({ environment })}\n\n`);
  const onRevoked = ({ tokenId }: { tokenId: string }) => {
    for (const s of [...subscribers])
      if (s.tokenId === tokenId) {
        subscribers.delete(s);
        s.out.end();
      }
  };
  app.changeFeed.on('change', onChange);
  app.changeFeed.on('environment.reset', onReset);
  app.changeFeed.on('environment.created', onCreated);
  app.changeFeed.on('token.revoked', onRevoked);
  const heartbeat = setInterval(() => broadcast(': heartbeat\n\n'), options.heartbeatMs ?? 15_000);
  heartbeat.unref();

  // Before fastify waits for open requests: an event stream never ends on its own.
  app.addHook('preClose', async () => {
    clearInterval(heartbeat);
    app.changeFeed.off('change', onChange);
    app.changeFeed.off('environment.reset', onReset);
    app.changeFeed.off('environment.created', onCreated);
    app.changeFeed.off('token.revoked', onRevoked);
    for (const s of subscribers) {
      s.out.once('end', () => setImmediate(() => s.socket.destroy()));
      s.out.end();
    }
    subscribers.clear();
  });

  app.get('/events', { schema: routeSchema('adminEvents') }, async (request, reply) => {
    const actor = request.actor!;
    const owner = actor.tokenId ?? `person:${actor.subject ?? actor.name}`;
    let open = 0;
    for (const s of subscribers) if (s.owner === owner) open++;
    if (open >= perToken) {
      reply.header('retry-after', '60');
      return sendProblem(
        reply,
        problemDocument('too-many-requests', `Too many open event streams for this token (${perToken}).`, {
          instance: '/api/v1/events',
          extensions: { limit: 'admin-event-streams-per-token' },
        }),
      );
    }
    const out = new PassThrough();
    const s: Subscriber = { owner, tokenId: actor.tokenId, out, socket: request.raw.socket };
    subscribers.add(s);
    reply.raw.once('close', () => {
      subscribers.delete(s);
      out.destroy();
    });
    out.once('close', () => subscribers.delete(s));
    // The headers go out at once, and the first event says where the environments are now.
    const versions = Object.fromEntries((await app.stores.environments.list()).map((e) => [e.key, app.snapshots.version(e.key) ?? e.version]));
    out.write(`event: hello\ndata: ${JSON.stringify({ versions, heartbeatMs: options.heartbeatMs ?? 15_000 })}\n\n`);
    return reply
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('x-accel-buffering', 'no')
      .send(out);
  });
};
