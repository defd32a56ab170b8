/**
 * The stream hub: every open SDK stream, grouped by environment. It turns the change feed into delta messages
 * (serialized once per environment, sent to every subscriber in commit order), resumes reconnecting clients from
 * the change log, sends heartbeats, drops slow consumers instead of buffering for them, closes streams of revoked
 * keys, and keeps delivery receipts: which version each connected SDK has applied, and how fast.
 */
import type { WebSocket } from 'ws';
import type { EnvironmentSnapshot } from '@aviary/sdk/core';
import { CloseCode, encodeMessage, parseClientMessage, type HelloMessage, type ServerMessage } from '@aviary/sdk/protocol';
import type { Delta } from '@aviary/sdk/protocol';

/** Where the hub reads what SDKs see (app.snapshots). */
export interface HubSource {
  get(environment: string): EnvironmentSnapshot | null;
  version(environment: string): number | null;
  changesSince(environment: string, version: number): Delta[] | null;
}

export interface HubOptions {
  /** Heartbeat (and server-side ping) interval. Default 15,000 ms. */
  heartbeatMs?: number;
  /** A subscriber whose unsent data exceeds this is dropped (close 4008) and resumes later. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** A connection that has not said hello by then is closed. Default 10,000 ms. */
  helloTimeoutMs?: number;
  /** Versions per environment for which receipts keep apply latencies. Default 64. */
  receiptVersions?: number;
  /**
   * Snapshots sent per SDK key and client address: a token bucket of `hydrationBurst` snapshots refilled at
   * `hydrationsPerMinute`. A snapshot is the one large thing the stream sends, and a client can ask for one with a few
   * bytes (hello, resync); past the bucket the connection is closed with 1013 and an `error` carrying `retryAfterMs`,
   * which SDKs honour before reconnecting (they keep serving the flags they have). The burst lets a fleet behind one
   * address (a NAT) start at once. Defaults 120 per minute (`AVIARY_STREAM_HYDRATIONS_PER_MINUTE`) and 1,000
   * (`AVIARY_STREAM_HYDRATION_BURST`). A snapshot whose connection then stays open `hydrationRefundAfterMs` (default
   * 30,000) is given back: an SDK that settled is not a loop, and the fleet behind that address finds the whole burst
   * again at the next restart or failover, however recently it connected.
   */
  hydrationsPerMinute?: number;
  hydrationBurst?: number;
  hydrationRefundAfterMs?: number;
  /**
   * On shutdown every stream is told to reconnect at a uniformly random moment within a window (`going-away` with
   * `reconnectWindowMs`, then close 1001), sized so that the fleet reaches the other replicas, or the restarted
   * server, at about this many connections per second: open streams ÷ rate, kept within 0.5–4 s (the upper bound
   * keeps every SDK current within 5 s of a replica's shutdown). Default 500.
   */
  reconnectsPerSecond?: number;
  now?: () => number;
  /**
   * Replicas only: called when an SDK resumes from a version this replica has not applied yet (it came from a replica
   * that is ahead): the follower catches up now; the SDK waits for that version (at most `aheadWaitMs`, then it gets a
   * snapshot). Without it (one server), a version ahead of the server's is bogus and gets a snapshot at once.
   */
  behind?: (environment: string) => void;
  /** Default 2,000 ms. */
  aheadWaitMs?: number;
}

/** Connections' (key, address) buckets kept at most; past this the oldest are forgotten (fail open, bounded memory). */
const MAX_HYDRATION_BUCKETS = 50_000;
/** WebSocket close code 1013, "try again later" (RFC 6455 registry): retryable, unlike 4001/4003. */
const TRY_AGAIN_LATER = 1013;
/** Bounds of the reconnect window a shutting-down server gives its streams (see `HubOptions.reconnectsPerSecond`). */
const RECONNECT_WINDOW_MIN_MS = 500;
const RECONNECT_WINDOW_MAX_MS = 4_000;

/** How far one environment version has reached the SDKs connected to its stream. */
export interface DeliveryReceipt {
  environment: string;
  version: number;
  /** SDKs connected (and past hello) now. */
  connected: number;
  /** Of those, how many have applied `version` or a later one. */
  applied: number;
  /** Every connected SDK has applied it. */
  complete: boolean;
  /** Time from the commit to each SDK's acknowledgement arriving at the server (ms); null when none yet. */
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** Milliseconds from the commit to the last acknowledgement counted (= maxMs). */
  elapsedMs: number | null;
  /** Where to follow further acknowledgements. */
  url: string;
}

/** One connected SDK, as `GET /api/v1/environments/{env}/sdks` lists it. */
export interface ConnectedSdkInfo {
  id: string;
  app?: { name?: string; version?: string };
  sdk: { name: string; version: string };
  /** Epoch milliseconds. */
  connectedAt: number;
  appliedVersion: number | null;
  /** When the server received the SDK's acknowledgement (epoch milliseconds, server clock). */
  appliedAt: number | null;
}

const OPEN = 1;
const CLOSED = 3;
const TEXT_FRAME = { binary: false } as const;

/**
 * A message encoded once for every subscriber: its UTF-8 bytes, handed to each socket's public `send` as a text
 * frame (`ws` frames a Buffer without copying or re-encoding it), so a broadcast encodes once, not once per socket.
 */
type Frame = Buffer;

const frameOf = (text: string): Frame => Buffer.from(text, 'utf8');

/** A well-behaved SDK resyncs at most three times before reconnecting; more than this is a loop or abuse. */
const MAX_RESYNCS_PER_WINDOW = 5;
const RESYNC_WINDOW_MS = 10_000;
const enum Phase {
  Hello = 0,
  Live = 1,
  Closed = 2,
}

/** Per-connection state. Kept small: idle connections are the hub's main memory cost. */
class Connection {
  phase = Phase.Hello;
  alive = true;
  sdkId = '';
  app: HelloMessage['app'] = undefined;
  sdkVersion = '';
  appliedVersion = -1;
  appliedAt = 0;
  /** Start of the current resync window and the resyncs in it (a snapshot costs the server; bound it). */
  resyncWindow = 0;
  resyncs = 0;
  /** When this connection was last sent a snapshot charged to its bucket, until it is refunded (0: none). */
  hydratedAt = 0;
  helloTimer: ReturnType<typeof setTimeout> | null = null;
  constructor(
    readonly socket: WebSocket,
    readonly channel: Channel,
    readonly tokenId: string,
    readonly connectedAt: number,
    /** The client's address (fastify's `request.ip`): with the key, what hydrations are counted by. */
    readonly address: string,
  ) {}
}

interface Waiter {
  version: number;
  resolve: () => void;
}

class Channel {
  readonly conns = new Set<Connection>();
  hydrate: { version: number; frame: Frame } | null = null;
  /** version → commit time, for the last `receiptVersions` versions. */
  readonly commits = new Map<number, number>();
  /** version → apply latencies (ms) of the SDKs that acknowledged it. */
  readonly latencies = new Map<number, number[]>();
  readonly waiters = new Set<Waiter>();
  /**
   * The lowest version a waiter waits for, and how many live connections have not applied it: an ack only
   * decrements the count, and the O(connections) scan runs when it reaches zero, not on each of 1,000 acks.
   */
  floor = Infinity;
  behind = 0;
  /** Connections that resumed from a version ahead of this replica's, waiting for it to catch up. */
  readonly ahead = new Map<Connection, { lastVersion: number; timer: NodeJS.Timeout }>();
  constructor(
    readonly environment: string,
    public version: number,
  ) {}
}

/** Hydrations are counted per SDK key and client address. */
const bucketId = (conn: Connection): string => `${conn.tokenId}\n${conn.address}`;

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? null;
}

export class StreamHub {
  /** Called when an environment's SDKs change (one connected, acknowledged, left): replicas publish their list. */
  onActivity: ((environment: string) => void) | null = null;
  private readonly channels = new Map<string, Channel>();
  private readonly behindHook: ((environment: string) => void) | undefined;
  private readonly aheadWaitMs: number;
  private readonly heartbeatMs: number;
  private readonly maxBuffered: number;
  private readonly helloTimeoutMs: number;
  private readonly receiptVersions: number;
  private readonly now: () => number;
  private readonly timer: ReturnType<typeof setInterval>;
  /** Counters for /metrics and tests. */
  readonly stats = { connections: 0, slowConsumersDropped: 0, resumes: 0, hydrates: 0, hydrationsRefused: 0, hydrationsRefunded: 0, deltasSent: 0 };
  private readonly hydrationsPerMinute: number;
  private readonly hydrationBurst: number;
  private readonly hydrationRefundAfterMs: number;
  private readonly reconnectsPerSecond: number;
  private readonly hydrationBuckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly source: HubSource,
    options: HubOptions = {},
  ) {
    this.heartbeatMs = options.heartbeatMs ?? 15_000;
    this.maxBuffered = options.maxBufferedBytes ?? 1024 * 1024;
    this.helloTimeoutMs = options.helloTimeoutMs ?? 10_000;
    this.receiptVersions = options.receiptVersions ?? 64;
    this.hydrationsPerMinute = options.hydrationsPerMinute ?? 120;
    this.hydrationBurst = options.hydrationBurst ?? 1000;
    this.hydrationRefundAfterMs = options.hydrationRefundAfterMs ?? 30_000;
    this.reconnectsPerSecond = (options.reconnectsPerSecond ?? 0) > 0 ? options.reconnectsPerSecond! : 500;
    this.now = options.now ?? Date.now;
    this.behindHook = options.behind;
    this.aheadWaitMs = options.aheadWaitMs ?? 2000;
    this.timer = setInterval(() => this.heartbeat(), this.heartbeatMs);
    this.timer.unref();
  }

  /** Number of open streams (all environments, or one). */
  count(environment?: string): number {
    if (environment !== undefined) return this.channels.get(environment)?.conns.size ?? 0;
    let n = 0;
    for (const ch of this.channels.values()) n += ch.conns.size;
    return n;
  }

  /**
   * Takes an authenticated websocket. Must be called synchronously from the route handler: the message listener is
   * attached here, before anything else can run, so no client message is lost.
   */
  accept(socket: WebSocket, principal: { tokenId: string; environment: string }, since?: number, address = ''): void {
    const ch = this.channel(principal.environment);
    if (!ch) {
      this.reject(socket, CloseCode.FORBIDDEN, 'environment-gone', `Environment "${principal.environment}" no longer exists.`);
      return;
    }
    const conn = new Connection(socket, ch, principal.tokenId, this.now(), address);
    ch.conns.add(conn);
    this.stats.connections++;
    socket.on('message', (data, isBinary) => this.onMessage(conn, isBinary ? '' : data.toString(), since));
    socket.on('close', () => this.onClose(conn));
    socket.on('error', () => this.onClose(conn));
    socket.on('pong', () => {
      conn.alive = true;
    });
    conn.helloTimer = setTimeout(() => {
      if (conn.phase === Phase.Hello) this.reject(socket, CloseCode.PROTOCOL_ERROR, 'no-hello', 'Send a hello message first.');
    }, this.helloTimeoutMs);
    conn.helloTimer.unref();
  }

  /** Closes a socket with a reason the client can read (an `error` message, then the close code). */
  reject(socket: WebSocket, code: number, errorCode: string, message: string): void {
    if (socket.readyState === OPEN) {
      socket.send(encodeMessage({ type: 'error', code: errorCode, message }));
      socket.close(code, errorCode);
    }
  }

  /** A committed change (from the change feed): one message, serialized once, to every live subscriber. */
  publish(environment: string, delta: Delta): void {
    const ch = this.channels.get(environment);
    if (!ch || delta.version <= ch.version) return;
    const prev = ch.version;
    ch.version = delta.version;
    ch.hydrate = null;
    ch.commits.set(delta.version, this.now());
    if (ch.commits.size > this.receiptVersions) {
      const oldest = ch.commits.keys().next().value as number;
      ch.commits.delete(oldest);
      ch.latencies.delete(oldest);
    }
    const frame = frameOf(encodeMessage({ type: 'delta', version: delta.version, prev, changes: delta.changes }));
    for (const conn of ch.conns) if (conn.phase === Phase.Live && !ch.ahead.has(conn) && this.send(conn, frame)) this.stats.deltasSent++;
    for (const [conn, wait] of ch.ahead) {
      if (wait.lastVersion > ch.version) continue;
      clearTimeout(wait.timer);
      ch.ahead.delete(conn);
      this.start(conn, wait.lastVersion);
    }
  }

  /**
   * This replica reloaded an environment instead of following its log delta by delta (change-follower.ts): every
   * subscriber gets the new snapshot (not counted against its hydration allowance: the server caused it).
   */
  reset(environment: string): void {
    const ch = this.channels.get(environment);
    if (!ch) return;
    ch.hydrate = null;
    ch.version = Math.max(ch.version, this.source.version(environment) ?? ch.version);
    for (const conn of ch.conns) if (conn.phase === Phase.Live) this.sendHydrate(conn, false);
  }

  /** Closes every stream opened with a revoked token. */
  revokeToken(tokenId: string, expired = false): void {
    for (const ch of this.channels.values()) {
      for (const conn of ch.conns) {
        if (conn.tokenId === tokenId) {
          if (expired) this.reject(conn.socket, CloseCode.FORBIDDEN, 'expired', 'This SDK key has expired.');
          else this.reject(conn.socket, CloseCode.FORBIDDEN, 'revoked', 'This SDK key has been revoked.');
          this.onClose(conn);
        }
      }
    }
  }

  /** The receipt for `version` of `environment` now. */
  receipt(environment: string, version: number): DeliveryReceipt {
    const ch = this.channels.get(environment);
    let connected = 0;
    let applied = 0;
    if (ch) {
      for (const c of ch.conns) {
        if (c.phase !== Phase.Live) continue;
        connected++;
        if (c.appliedVersion >= version) applied++;
      }
    }
    const lat = [...(ch?.latencies.get(version) ?? [])].sort((a, b) => a - b);
    const max = lat.length ? lat[lat.length - 1]! : null;
    return {
      environment,
      version,
      connected,
      applied,
      complete: applied >= connected,
      p50Ms: quantile(lat, 0.5),
      p99Ms: quantile(lat, 0.99),
      maxMs: max,
      elapsedMs: max,
      url: `/api/v1/environments/${encodeURIComponent(environment)}/sdks`,
    };
  }

  /** Waits up to `timeoutMs` for every connected SDK to apply `version`, then answers the receipt (complete or not). */
  async waitFor(environment: string, version: number, timeoutMs: number): Promise<DeliveryReceipt> {
    const first = this.receipt(environment, version);
    if (first.complete || timeoutMs <= 0) return first;
    const ch = this.channels.get(environment);
    if (!ch) return first;
    await new Promise<void>((resolve) => {
      const waiter: Waiter = { version, resolve: () => {} };
      const timer = setTimeout(() => waiter.resolve(), timeoutMs);
      timer.unref();
      waiter.resolve = () => {
        clearTimeout(timer);
        ch.waiters.delete(waiter);
        resolve();
      };
      ch.waiters.add(waiter);
      this.recount(ch);
      if (ch.behind === 0) this.checkWaiters(ch);
    });
    return this.receipt(environment, version);
  }

  /** The SDKs connected to an environment's stream. */
  list(environment: string): ConnectedSdkInfo[] {
    const ch = this.channels.get(environment);
    if (!ch) return [];
    const out: ConnectedSdkInfo[] = [];
    for (const c of ch.conns) {
      if (c.phase !== Phase.Live) continue;
      const info: ConnectedSdkInfo = {
        id: c.sdkId,
        sdk: { name: '@aviary/sdk', version: c.sdkVersion },
        connectedAt: c.connectedAt,
        appliedVersion: c.appliedVersion >= 0 ? c.appliedVersion : null,
        appliedAt: c.appliedAt || null,
      };
      if (c.app) info.app = c.app;
      out.push(info);
    }
    return out;
  }

  /**
   * The window a shutting-down server gives its streams to reconnect in: its fleet ÷ `reconnectsPerSecond`, within
   * 0.5–4 s (a fleet of 1,000 gets 2 s at the default rate).
   */
  reconnectWindowMs(): number {
    const fleetMs = Math.round((this.count() * 1000) / this.reconnectsPerSecond);
    return Math.min(RECONNECT_WINDOW_MAX_MS, Math.max(RECONNECT_WINDOW_MIN_MS, fleetMs));
  }

  /**
   * Closes every stream (server shutdown): clients reconnect with backoff and resume. Each is first told over what
   * window to spread its reconnect (`going-away`, `reconnectWindowMs`; older clients ignore it and use their own
   * backoff), then gets a close frame and up to `graceMs` to answer it; a client that stopped reading never will, and
   * would hold the server's shutdown (its TCP connection open) until ws's own 30 s close timeout, so what is still
   * open then is terminated. (Upgrades that arrive meanwhile get fastify's 503: the server is closing.)
   */
  async close(graceMs = 1000): Promise<void> {
    clearInterval(this.timer);
    const windowMs = this.reconnectWindowMs();
    const goodbye = frameOf(
      encodeMessage({
        type: 'error',
        code: 'going-away',
        message: `The server is shutting down: reconnect within ${windowMs} ms (to another replica, or to this server when it is back).`,
        reconnectWindowMs: windowMs,
      }),
    );
    const sockets: WebSocket[] = [];
    for (const ch of this.channels.values()) {
      for (const conn of ch.conns) {
        sockets.push(conn.socket);
        try {
          if (conn.socket.readyState === OPEN) conn.socket.send(goodbye, TEXT_FRAME);
          conn.socket.close(CloseCode.GOING_AWAY, 'server shutting down');
        } catch {
          // already closed
        }
        this.onClose(conn);
      }
    }
    const open = sockets.filter((s) => s.readyState !== CLOSED);
    if (open.length === 0) return;
    await new Promise<void>((resolve) => {
      let left = open.length;
      const timer = setTimeout(resolve, graceMs);
      for (const s of open) {
        s.once('close', () => {
          if (--left === 0) {
            clearTimeout(timer);
            resolve();
          }
        });
      }
    });
    for (const s of open) if (s.readyState !== CLOSED) s.terminate();
  }

  private channel(environment: string): Channel | null {
    let ch = this.channels.get(environment);
    if (ch) return ch;
    const version = this.source.version(environment);
    if (version === null) return null;
    ch = new Channel(environment, version);
    this.channels.set(environment, ch);
    return ch;
  }

  private onMessage(conn: Connection, text: string, since: number | undefined): void {
    if (conn.phase === Phase.Closed) return;
    const parsed = parseClientMessage(text);
    if (!parsed.ok) {
      this.reject(conn.socket, CloseCode.PROTOCOL_ERROR, 'bad-message', parsed.error);
      return;
    }
    const m = parsed.message;
    if (conn.phase === Phase.Hello) {
      if (m.type !== 'hello') {
        this.reject(conn.socket, CloseCode.PROTOCOL_ERROR, 'no-hello', 'Send a hello message first.');
        return;
      }
      if (conn.helloTimer) clearTimeout(conn.helloTimer);
      conn.helloTimer = null;
      conn.sdkId = m.sdkId;
      conn.sdkVersion = m.sdkVersion;
      conn.app = m.app;
      conn.phase = Phase.Live;
      this.onActivity?.(conn.channel.environment);
      if (conn.appliedVersion < conn.channel.floor) conn.channel.behind++;
      this.start(conn, m.lastVersion ?? since);
      return;
    }
    switch (m.type) {
      case 'ack':
        this.ack(conn, m.version);
        return;
      case 'resync': {
        const t = this.now();
        if (t - conn.resyncWindow > RESYNC_WINDOW_MS) {
          conn.resyncWindow = t;
          conn.resyncs = 0;
        }
        if (++conn.resyncs > MAX_RESYNCS_PER_WINDOW) {
          this.reject(
            conn.socket,
            CloseCode.PROTOCOL_ERROR,
            'too-many-resyncs',
            `At most ${MAX_RESYNCS_PER_WINDOW} resyncs per ${RESYNC_WINDOW_MS / 1000} s.`,
          );
          return;
        }
        this.sendHydrate(conn);
        return;
      }
      case 'hello':
        this.reject(conn.socket, CloseCode.PROTOCOL_ERROR, 'repeated-hello', 'hello may be sent once.');
        return;
    }
  }

  /** Resumes from `lastVersion` when the change log still reaches back that far; otherwise hydrates. */
  private start(conn: Connection, lastVersion: number | undefined): void {
    const ch = conn.channel;
    if (this.behindHook && lastVersion !== undefined && lastVersion > ch.version && !ch.ahead.has(conn)) {
      // The SDK saw a version this replica has not applied yet (its last replica was ahead): wait for it rather than
      // hand it an older snapshot, which would undo what it already serves (a kill switch, say).
      const timer = setTimeout(() => {
        ch.ahead.delete(conn);
        if (conn.socket.readyState === OPEN) this.sendHydrate(conn);
      }, this.aheadWaitMs);
      timer.unref();
      ch.ahead.set(conn, { lastVersion, timer });
      this.behindHook?.(ch.environment);
      return;
    }
    if (lastVersion !== undefined && lastVersion <= ch.version) {
      const deltas = this.source.changesSince(ch.environment, lastVersion);
      if (deltas) {
        let prev = lastVersion;
        for (const d of deltas) {
          if (!this.send(conn, encodeMessage({ type: 'delta', version: d.version, prev, changes: d.changes }))) return;
          prev = d.version;
        }
        this.stats.resumes++;
        this.send(conn, encodeMessage({ type: 'resumed', version: prev, heartbeatMs: this.heartbeatMs }));
        return;
      }
    }
    this.sendHydrate(conn);
  }

  /** Takes one hydration from the connection's (key, address) bucket; answers the ms to wait when there is none. */
  private hydrationWait(conn: Connection): number {
    const id = bucketId(conn);
    const t = this.now();
    const perMs = this.hydrationsPerMinute / 60_000;
    let b = this.hydrationBuckets.get(id);
    if (b === undefined) {
      if (this.hydrationBuckets.size >= MAX_HYDRATION_BUCKETS) this.hydrationBuckets.delete(this.hydrationBuckets.keys().next().value as string);
      b = { tokens: this.hydrationBurst, at: t };
    } else {
      this.hydrationBuckets.delete(id); // re-inserted below: the map's order is least recently used first
      b.tokens = Math.min(this.hydrationBurst, b.tokens + (t - b.at) * perMs);
      b.at = t;
    }
    this.hydrationBuckets.set(id, b);
    if (b.tokens < 1) return Math.ceil((1 - b.tokens) / perMs);
    b.tokens -= 1;
    return 0;
  }

  private sendHydrate(conn: Connection, metered = true): void {
    const ch = conn.channel;
    const waitMs = metered ? this.hydrationWait(conn) : 0;
    if (waitMs > 0) {
      this.stats.hydrationsRefused++;
      if (conn.socket.readyState === OPEN) {
        conn.socket.send(
          encodeMessage({
            type: 'error',
            code: 'too-many-hydrations',
            message: `At most ${this.hydrationBurst} snapshots at once, then ${this.hydrationsPerMinute} per minute, per SDK key and address; reconnect in ${Math.ceil(waitMs / 1000)} s.`,
            retryAfterMs: waitMs,
          }),
        );
        conn.socket.close(TRY_AGAIN_LATER, 'too-many-hydrations');
      }
      return;
    }
    let h = ch.hydrate;
    if (!h || h.version !== ch.version) {
      const snapshot = this.source.get(ch.environment);
      if (!snapshot) {
        this.reject(conn.socket, CloseCode.FORBIDDEN, 'environment-gone', `Environment "${ch.environment}" no longer exists.`);
        return;
      }
      // The snapshot is read synchronously, in the same tick as the feed, so it is exactly at ch.version.
      ch.version = Math.max(ch.version, snapshot.version);
      const message: ServerMessage = { type: 'hydrate', version: snapshot.version, snapshot, heartbeatMs: this.heartbeatMs };
      h = ch.hydrate = { version: snapshot.version, frame: frameOf(encodeMessage(message)) };
    }
    this.stats.hydrates++;
    conn.hydratedAt = this.now();
    this.send(conn, h.frame);
  }

  /**
   * Gives a connection's snapshot back to its bucket once the connection has stayed open `hydrationRefundAfterMs`
   * since (checked on each heartbeat). A reconnect or resync loop never stays, so it still gets no more than the
   * burst and the refill; a settled fleet leaves its whole burst for the next restart or failover. An address can
   * hold at most burst + refill snapshots unrefunded, so refunds cap it at about burst ÷ refund delay per second.
   */
  private refundHydration(conn: Connection, t: number): void {
    if (conn.hydratedAt === 0 || t - conn.hydratedAt < this.hydrationRefundAfterMs) return;
    conn.hydratedAt = 0;
    const b = this.hydrationBuckets.get(bucketId(conn));
    if (b) b.tokens = Math.min(this.hydrationBurst, b.tokens + 1);
    this.stats.hydrationsRefunded++;
  }

  private ack(conn: Connection, version: number): void {
    const ch = conn.channel;
    // Acknowledging a version that does not exist yet is a confused client; ignore rather than trust it.
    if (version > ch.version || version <= conn.appliedVersion) return;
    const before = conn.appliedVersion;
    const t = this.now();
    conn.appliedVersion = version;
    conn.appliedAt = t;
    for (const [v, committedAt] of ch.commits) {
      if (v > before && v <= version) {
        let l = ch.latencies.get(v);
        if (!l) ch.latencies.set(v, (l = []));
        l.push(t - committedAt);
      }
    }
    if (before < ch.floor && version >= ch.floor && --ch.behind <= 0) this.checkWaiters(ch);
    this.onActivity?.(ch.environment);
  }

  /** Apply latencies (ms) this replica measured for `version`, and when it saw the version committed (epoch ms). */
  latencies(environment: string, version: number): { committedAt: number | null; latencies: readonly number[] } {
    const ch = this.channels.get(environment);
    return { committedAt: ch?.commits.get(version) ?? null, latencies: ch?.latencies.get(version) ?? [] };
  }

  /** The environments with open streams. */
  environments(): string[] {
    return [...this.channels.keys()];
  }

  /** Resolves waiters whose version every live connection has applied. O(connections): runs when `behind` hits 0. */
  private checkWaiters(ch: Channel): void {
    if (ch.waiters.size > 0) {
      let oldest = Infinity;
      for (const c of ch.conns) if (c.phase === Phase.Live && c.appliedVersion < oldest) oldest = c.appliedVersion;
      for (const w of [...ch.waiters]) if (w.version <= oldest) w.resolve();
    }
    this.recount(ch);
  }

  /** Sets the channel's waiter floor and how many live connections are below it (see `Channel.behind`). */
  private recount(ch: Channel): void {
    let floor = Infinity;
    for (const w of ch.waiters) if (w.version < floor) floor = w.version;
    let behind = 0;
    if (floor !== Infinity) for (const c of ch.conns) if (c.phase === Phase.Live && c.appliedVersion < floor) behind++;
    ch.floor = floor;
    ch.behind = behind;
  }

  /** Sends unless the client is too far behind, in which case it is dropped and will resume later. */
  private send(conn: Connection, data: string | Frame): boolean {
    const s = conn.socket;
    if (s.readyState !== OPEN || conn.phase === Phase.Closed) return false;
    if (s.bufferedAmount > this.maxBuffered) {
      this.stats.slowConsumersDropped++;
      s.close(CloseCode.SLOW_CONSUMER, 'slow consumer');
      // The close frame waits behind the unsent data; a reader that stalled may never take it.
      setTimeout(() => s.terminate(), 2_000).unref();
      this.onClose(conn);
      return false;
    }
    s.send(data, TEXT_FRAME);
    return true;
  }

  private heartbeat(): void {
    const t = this.now();
    for (const ch of this.channels.values()) {
      const text = frameOf(encodeMessage({ type: 'heartbeat', version: ch.version }));
      for (const conn of ch.conns) {
        if (conn.phase !== Phase.Live) continue;
        if (!conn.alive) {
          // No pong for a whole interval: the peer is gone without a close (network cut, process frozen).
          conn.socket.terminate();
          this.onClose(conn);
          continue;
        }
        conn.alive = false;
        this.refundHydration(conn, t);
        try {
          conn.socket.ping();
        } catch {
          // closing
        }
        this.send(conn, text);
      }
    }
  }

  private onClose(conn: Connection): void {
    if (conn.phase === Phase.Closed) return;
    conn.phase = Phase.Closed;
    if (conn.helloTimer) clearTimeout(conn.helloTimer);
    const ch = conn.channel;
    ch.conns.delete(conn);
    const wait = ch.ahead.get(conn);
    if (wait) {
      clearTimeout(wait.timer);
      ch.ahead.delete(conn);
    }
    this.checkWaiters(ch);
    if (conn.sdkId) this.onActivity?.(ch.environment);
    if (ch.conns.size === 0 && ch.waiters.size === 0) this.channels.delete(ch.environment);
  }
}
