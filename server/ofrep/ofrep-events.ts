/**
 * OFREP change events (OFREP ADR-0008, as `@openfeature/ofrep-web-provider` ≥ 0.4 consumes them):
 *   - the bulk evaluation's 200 body carries `eventStreams: [{ type: 'sse', endpoint: { requestUri }, inactivityDelaySec }]`
 *     (`eventStreamsFor`), where `requestUri` is `/ofrep/v1/events?ticket=<ticket>`;
 *   - `GET /ofrep/v1/events?ticket=…` is a `text/event-stream` that sends `data: {"type":"refetchEvaluation","etag":…}`
 *     after every committed change of the key's environment (and after a reset of this replica's copy of it), and an
 *     SSE comment as a heartbeat; the provider then re-fetches the bulk evaluation (with If-None-Match).
 * A browser's EventSource cannot send headers, so the URL carries a ticket, not the key (TokenStore.eventsTicket: an
 * HMAC keyed by the key's stored hash): it opens this stream only, any replica can check it, and it dies with the key —
 * a revoked key's streams are ended at once. An SDK key is public, so what it may hold is bounded: at most
 * `perAddress` open streams per key and client address and `perKey` per key (over either: 429 with Retry-After, which
 * EventSource treats as final; the provider then falls back to polling if it has a poll interval). Events carry no
 * flag data and are coalesced: a stream with unsent bytes over `maxBufferedBytes` is ended (the client reconnects and
 * re-fetches).
 */
import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { authFailureLimitHook } from '../auth/hooks.js';
import { problem, problemDocument, sendProblem } from '../errors.js';

export interface OfrepEventsOptions {
  /** Heartbeat (SSE comment) interval. Default 15,000 ms. */
  heartbeatMs?: number;
  /** Open streams per SDK key and client address. Default 20. */
  perAddress?: number;
  /** Open streams per SDK key. Default 10,000. */
  perKey?: number;
  /** A stream whose unsent bytes exceed this is ended. Default 16 KiB. */
  maxBufferedBytes?: number;
}

/** What the provider is told about client inactivity (seconds hidden before it closes the stream). */
const INACTIVITY_DELAY_SEC = 120;
const EVENTS_PATH = '/events';

/** The `eventStreams` entry of a bulk evaluation answered to `tokenId` (none when the key has no ticket, i.e. gone). */
export function eventStreamsFor(app: FastifyInstance, prefix: string, tokenId: string) {
  const ticket = app.stores.tokens.eventsTicket(tokenId);
  if (ticket === null) return undefined;
  return [{ type: 'sse', endpoint: { requestUri: `${prefix}${EVENTS_PATH}?ticket=${ticket}` }, inactivityDelaySec: INACTIVITY_DELAY_SEC }];
}

/** The configuration ETag an event carries: the environment and its version (the bulk ETag adds the context). */
const configEtag = (environment: string, version: number) => `"${environment}-${version}"`;

export interface Subscriber {
  tokenId: string;
  ip: string;
  environment: string;
  out: PassThrough;
  /** The response's socket: destroyed after the stream's end on shutdown (it would otherwise idle in keep-alive). */
  socket: import('node:net').Socket;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The open OFREP event streams (server/ofrep/ofrep-events.ts); decorated by buildApp. */
    ofrepEvents: OfrepEventStreams;
  }
}

/** The open OFREP event streams of this server, by environment and by SDK key; fed by the change feed. */
export class OfrepEventStreams {
  readonly perAddress: number;
  readonly perKey: number;
  private readonly maxBufferedBytes: number;
  private readonly byEnvironment = new Map<string, Set<Subscriber>>();
  private readonly byToken = new Map<string, Set<Subscriber>>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(app: Pick<FastifyInstance, 'changeFeed' | 'snapshots'>, options: OfrepEventsOptions = {}) {
    this.perAddress = options.perAddress ?? 20;
    this.perKey = options.perKey ?? 10_000;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 16 * 1024;
    const onChange = ({ environment }: { environment: string }) => this.notify(environment, app.snapshots.version(environment));
    const onRevoked = ({ tokenId }: { tokenId: string }) => {
      for (const s of [...(this.byToken.get(tokenId) ?? [])]) {
        this.remove(s);
        s.out.end();
      }
    };
    app.changeFeed.on('change', onChange);
    app.changeFeed.on('environment.reset', onChange);
    app.changeFeed.on('token.revoked', onRevoked);
    this.unsubscribe = () => {
      app.changeFeed.off('change', onChange);
      app.changeFeed.off('environment.reset', onChange);
      app.changeFeed.off('token.revoked', onRevoked);
    };
    this.heartbeat = setInterval(() => {
      for (const subs of this.byEnvironment.values()) for (const s of subs) this.send(s, ': heartbeat\n\n');
    }, options.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  /** Open streams (all keys). */
  count(): number {
    let n = 0;
    for (const subs of this.byEnvironment.values()) n += subs.size;
    return n;
  }

  /** Which bound a new stream of this key from this address would break, or null. */
  over(tokenId: string, ip: string): 'ofrep-streams-per-address' | 'ofrep-streams-per-key' | null {
    const mine = this.byToken.get(tokenId);
    if (!mine) return null;
    let fromAddress = 0;
    for (const s of mine) if (s.ip === ip) fromAddress++;
    if (fromAddress >= this.perAddress) return 'ofrep-streams-per-address';
    return mine.size >= this.perKey ? 'ofrep-streams-per-key' : null;
  }

  add(s: Subscriber): void {
    const mine = this.byToken.get(s.tokenId) ?? new Set<Subscriber>();
    mine.add(s);
    this.byToken.set(s.tokenId, mine);
    const subs = this.byEnvironment.get(s.environment) ?? new Set<Subscriber>();
    subs.add(s);
    this.byEnvironment.set(s.environment, subs);
  }

  remove(s: Subscriber): void {
    const subs = this.byEnvironment.get(s.environment);
    subs?.delete(s);
    if (subs?.size === 0) this.byEnvironment.delete(s.environment);
    const mine = this.byToken.get(s.tokenId);
    mine?.delete(s);
    if (mine?.size === 0) this.byToken.delete(s.tokenId);
  }

  /** Ends every stream (server close). */
  close(): void {
    clearInterval(this.heartbeat);
    this.unsubscribe();
    for (const subs of this.byEnvironment.values())
      for (const s of subs) {
        s.out.once('end', () => setImmediate(() => s.socket.destroy()));
        s.out.end();
      }
    this.byEnvironment.clear();
    this.byToken.clear();
  }

  private send(s: Subscriber, chunk: string): void {
    // Events carry no data worth queueing: a client that does not read is dropped (it reconnects and re-fetches).
    if (s.out.writableLength > this.maxBufferedBytes) {
      this.remove(s);
      s.out.destroy();
      return;
    }
    s.out.write(chunk);
  }

  private notify(environment: string, version: number | null): void {
    const subs = this.byEnvironment.get(environment);
    if (!subs) return;
    const event = `data: ${JSON.stringify({ type: 'refetchEvaluation', ...(version !== null ? { etag: configEtag(environment, version) } : {}) })}\n\n`;
    for (const s of subs) this.send(s, event);
  }
}

/** `GET /events`: registered by ofrepRoutes in its own context (no SDK-key header hook: the ticket authenticates). */
export const ofrepEventsRoutes: FastifyPluginAsync = async (app) => {
  const streams = app.ofrepEvents;
  app.addHook('onRequest', authFailureLimitHook);
  app.get<{ Querystring: { ticket?: string } }>(EVENTS_PATH, async (request, reply) => {
    const ticket = request.query.ticket;
    if (typeof ticket !== 'string' || ticket === '') {
      app.changeFeed.emit('auth.failure', { ip: request.ip, scope: 'sdk', reason: 'missing' });
      throw problem('unauthorized', 'Send the ticket the bulk evaluation advertised in `eventStreams` as the "ticket" query parameter.');
    }
    const token = app.stores.tokens.authenticateTicket(ticket);
    if (token === null || token.environment === null) {
      app.changeFeed.emit('auth.failure', { ip: request.ip, scope: 'sdk', reason: 'invalid' });
      throw problem('unauthorized', 'Unknown or revoked ticket: fetch POST /ofrep/v1/evaluate/flags again for a current one.');
    }
    const over = streams.over(token.id, request.ip);
    if (over) {
      const which = over === 'ofrep-streams-per-address' ? `${streams.perAddress} per SDK key and address` : `${streams.perKey} per SDK key`;
      reply.header('retry-after', '60');
      return sendProblem(
        reply,
        problemDocument('too-many-requests', `Too many open OFREP event streams (${which}).`, {
          instance: request.url.split('?')[0]!,
          extensions: { limit: over },
        }),
      );
    }
    const out = new PassThrough();
    const s: Subscriber = { tokenId: token.id, ip: request.ip, environment: token.environment, out, socket: request.raw.socket };
    streams.add(s);
    // The response closes when the client goes away (or the stream ended): forget it, and drop what it had pending.
    // Its socket too: a response that ended mid-stream leaves nothing to reuse the connection for.
    reply.raw.once('close', () => {
      streams.remove(s);
      out.destroy();
      request.raw.socket.destroy();
    });
    out.once('close', () => streams.remove(s));
    // Opens the stream at once (EventSource fires `open` on the headers; the comment flushes them through proxies).
    out.write(': connected\n\n');
    return reply
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('x-accel-buffering', 'no')
      .send(out);
  });
};
