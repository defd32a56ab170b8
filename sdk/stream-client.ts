/**
 * The SDK side of `GET /sdk/v1/stream`: connects, says hello with the last applied version (so the server sends only
 * what was missed), applies hydrate and delta messages through the handlers, acknowledges each applied version,
 * notices dead connections with a read timeout, resyncs on gaps or garbage, and reconnects with backoff.
 * Runs unchanged in browsers (global WebSocket) and on Node (`ws`).
 */
import { Backoff, type BackoffOptions } from './backoff.js';
import {
  CloseCode,
  encodeMessage,
  isFinalCloseCode,
  KEY_PROTOCOL_PREFIX,
  parseServerMessage,
  STREAM_PROTOCOL,
  type ClientMessage,
  type DeltaMessage,
  type HydrateMessage,
} from './protocol.js';

/** The part of the WHATWG WebSocket interface the stream uses (met by browsers' `WebSocket` and by `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** A WebSocket constructor: the browser's global `WebSocket`, `ws`'s `WebSocket`, or anything compatible. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: object) => WebSocketLike;

/** What the stream reports to its owner (the client). */
export interface StreamHandlers {
  /** The last version applied, or undefined before any snapshot. */
  version(): number | undefined;
  /** Replace everything with this snapshot. Returns false if it could not be applied (then the stream resyncs). */
  hydrate(message: HydrateMessage): boolean;
  /**
   * Apply one delta (already checked to follow `version()`). Returns false if it could not be applied; otherwise
   * what remains to tell the application, which runs after the ack is sent, so that listeners' work never delays
   * the delivery receipt of a kill.
   */
  delta(message: DeltaMessage): false | (() => void);
  /** Connected and up to date, or not. */
  connection(up: boolean): void;
  /** A final failure (bad or revoked key) or a diagnostic; `fatal` means the stream stopped for good. */
  error(error: Error, fatal: boolean): void;
}

export interface StreamOptions {
  /** `http(s)://host:port` of the Aviary server. */
  baseUrl: string;
  sdkKey: string;
  sdkId: string;
  sdkVersion: string;
  app?: { name?: string; version?: string };
  /** Resolved lazily (the `ws` package is only imported on Node when nothing else is given). */
  webSocket: () => Promise<{ ctor: WebSocketConstructor; headers: boolean }>;
  backoff?: BackoffOptions;
  /** Give up on a connection that has not said anything for this long before its first heartbeat interval is known. */
  connectTimeoutMs?: number;
  now?: () => number;
  random?: () => number;
}

const OPEN = 1;
/** How many consecutive resyncs without a good snapshot before the stream reconnects instead. */
const MAX_RESYNCS = 3;

export class StreamClient {
  private socket: WebSocketLike | null = null;
  private readonly backoff: Backoff;
  private readonly now: () => number;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private readTimer: ReturnType<typeof setTimeout> | null = null;
  private readTimeoutMs: number;
  /** When the connection last said anything; the read timer checks it instead of being re-armed per message. */
  private lastMessageAt = 0;
  private resyncing = false;
  private resyncs = 0;
  private retryAfterMs = 0;
  private stopped = false;
  private up = false;
  private serverError: string | null = null;
  /** Counters for diagnostics and tests. */
  readonly stats = { connects: 0, resyncs: 0, garbled: 0, ignored: 0, gaps: 0 };

  constructor(
    private readonly options: StreamOptions,
    private readonly handlers: StreamHandlers,
  ) {
    this.now = options.now ?? Date.now;
    this.backoff = new Backoff(options.backoff, options.random);
    this.readTimeoutMs = options.connectTimeoutMs ?? 10_000;
  }

  /** Opens the connection (and keeps it open until `stop()`). */
  start(): void {
    this.stopped = false;
    void this.connect();
  }

  /** Closes for good: no reconnect. */
  stop(): void {
    this.stopped = true;
    this.clearTimers();
    const s = this.socket;
    this.socket = null;
    if (s) {
      detach(s);
      try {
        s.close(1000, 'client closed');
      } catch {
        // already closed
      }
    }
    this.setUp(false);
  }

  /** True while a connection is open and has delivered a snapshot. */
  get connected(): boolean {
    return this.up;
  }

  private async connect(): Promise<void> {
    if (this.stopped || this.socket) return;
    let ws: { ctor: WebSocketConstructor; headers: boolean };
    try {
      ws = await this.options.webSocket();
    } catch (err) {
      this.stopped = true;
      this.handlers.error(new Error(`no WebSocket implementation available: ${String(err)}`), true);
      return;
    }
    if (this.stopped || this.socket) return;
    const url = this.options.baseUrl.replace(/^http/, 'ws').replace(/\/+$/, '') + '/sdk/v1/stream';
    let socket: WebSocketLike;
    try {
      socket = ws.headers
        ? new ws.ctor(url, [STREAM_PROTOCOL], { headers: { authorization: `Bearer ${this.options.sdkKey}` }, perMessageDeflate: false })
        : new ws.ctor(url, [STREAM_PROTOCOL, KEY_PROTOCOL_PREFIX + this.options.sdkKey]);
    } catch (err) {
      this.handlers.error(new Error(`cannot open stream: ${String(err)}`), false);
      this.scheduleReconnect();
      return;
    }
    this.stats.connects++;
    this.socket = socket;
    this.resyncing = false;
    this.resyncs = 0;
    this.retryAfterMs = 0;
    this.readTimeoutMs = this.options.connectTimeoutMs ?? 10_000;
    this.armReadTimer();
    socket.onopen = () => {
      const hello: ClientMessage = { type: 'hello', sdkId: this.options.sdkId, sdkVersion: this.options.sdkVersion };
      if (this.options.app) hello.app = this.options.app;
      const v = this.handlers.version();
      if (v !== undefined) hello.lastVersion = v;
      this.send(hello);
    };
    socket.onmessage = (ev) => this.onMessage(socket, ev.data);
    socket.onclose = (ev) => this.onClose(socket, ev.code, ev.reason);
    // An error is always followed by a close; the close decides what happens next.
    socket.onerror = () => {};
  }

  private onMessage(socket: WebSocketLike, data: unknown): void {
    if (socket !== this.socket) return;
    this.lastMessageAt = this.now();
    const text = typeof data === 'string' ? data : String(data);
    const parsed = parseServerMessage(text);
    if (!parsed.ok) {
      this.stats.garbled++;
      this.resync(`unparseable message: ${parsed.error}`);
      return;
    }
    const m = parsed.message;
    switch (m.type) {
      case 'hydrate': {
        this.readTimeoutMs = m.heartbeatMs * 2 + 1_000;
        this.armReadTimer();
        if (!this.safely(() => this.handlers.hydrate(m))) {
          this.resync('snapshot could not be applied');
          return;
        }
        this.resyncing = false;
        this.resyncs = 0;
        this.backoff.connected(this.now());
        this.setUp(true);
        this.ack(m.version);
        return;
      }
      case 'delta': {
        const current = this.handlers.version();
        if (this.resyncing) {
          this.stats.ignored++;
          return;
        }
        if (current !== undefined && m.version <= current) {
          // A duplicate or a late message from before a snapshot we already have: nothing to do.
          this.stats.ignored++;
          return;
        }
        if (current === undefined || m.prev !== current) {
          this.stats.gaps++;
          this.resync(`gap: have ${current ?? 'nothing'}, delta builds on ${m.prev}`);
          return;
        }
        let notify: false | (() => void) = false;
        try {
          notify = this.handlers.delta(m);
        } catch {
          // counts as not applied
        }
        if (notify === false) {
          this.resync('delta could not be applied');
          return;
        }
        this.ack(m.version);
        notify();
        return;
      }
      case 'resumed': {
        this.readTimeoutMs = m.heartbeatMs * 2 + 1_000;
        this.armReadTimer();
        if (this.handlers.version() !== m.version) {
          this.resync(`resumed at ${m.version}, have ${this.handlers.version() ?? 'nothing'}`);
          return;
        }
        this.resyncing = false;
        this.resyncs = 0;
        this.backoff.connected(this.now());
        this.setUp(true);
        this.ack(m.version);
        return;
      }
      case 'heartbeat': {
        const current = this.handlers.version();
        if (!this.resyncing && current !== undefined && m.version > current) {
          this.stats.gaps++;
          this.resync(`behind: have ${current}, server at ${m.version}`);
        }
        return;
      }
      case 'error':
        // The close that follows decides what it means (final or not); keep the explanation for it.
        if (m.retryAfterMs !== undefined) this.retryAfterMs = m.retryAfterMs;
        this.serverError = `${m.code}: ${m.message}`;
        return;
    }
  }

  /** Runs an apply step; one that throws counts as not applied (resync), never as an exception in the app. */
  private safely(apply: () => boolean): boolean {
    try {
      return apply();
    } catch {
      return false;
    }
  }

  /** Asks for a fresh snapshot; after too many in a row, reconnects instead (the server may be confused too). */
  private resync(reason: string): void {
    this.stats.resyncs++;
    this.resyncing = true;
    if (++this.resyncs > MAX_RESYNCS) {
      this.drop(CloseCode.PROTOCOL_ERROR, 'too many resyncs');
      return;
    }
    this.send({ type: 'resync', reason });
  }

  private ack(version: number): void {
    this.send({ type: 'ack', version, appliedAt: this.now() });
  }

  private send(message: ClientMessage): void {
    const s = this.socket;
    if (!s || s.readyState !== OPEN) return;
    try {
      s.send(encodeMessage(message));
    } catch {
      // the close event follows
    }
  }

  private onClose(socket: WebSocketLike, code: number, reason: string): void {
    if (socket !== this.socket) return;
    this.socket = null;
    detach(socket);
    this.clearTimers();
    this.backoff.disconnected(this.now());
    this.setUp(false);
    if (this.stopped) return;
    const why = this.serverError ?? (reason || 'no reason given');
    this.serverError = null;
    if (isFinalCloseCode(code)) {
      this.stopped = true;
      this.handlers.error(new Error(`stream closed by server with ${code} (${why}); not reconnecting`), true);
      return;
    }
    if (code >= 4000) this.handlers.error(new Error(`stream closed by server with ${code} (${why}); reconnecting`), false);
    this.scheduleReconnect();
  }

  /** Closes a connection we gave up on without waiting for the closing handshake, then reconnects. */
  private drop(code: number, reason: string): void {
    const s = this.socket;
    if (!s) return;
    const terminate = (s as { terminate?: () => void }).terminate;
    try {
      if (typeof terminate === 'function') terminate.call(s);
      else s.close(code, reason);
    } catch {
      // already gone
    }
    this.onClose(s, code, reason);
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    const delay = Math.max(this.backoff.next(), this.retryAfterMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.connect();
    }, delay);
    unref(this.reconnectTimer);
  }

  /**
   * (Re)starts the read timeout from now. Messages only move `lastMessageAt`; when the timer fires early it re-arms
   * for the remainder, so a busy connection costs no timer work per message.
   */
  private armReadTimer(): void {
    this.lastMessageAt = this.now();
    if (this.readTimer) clearTimeout(this.readTimer);
    const check = (): void => {
      const idle = this.now() - this.lastMessageAt;
      if (idle < this.readTimeoutMs) {
        this.readTimer = setTimeout(check, this.readTimeoutMs - idle);
        unref(this.readTimer);
        return;
      }
      this.readTimer = null;
      this.drop(CloseCode.GOING_AWAY, 'read timeout');
    };
    this.readTimer = setTimeout(check, this.readTimeoutMs);
    unref(this.readTimer);
  }

  private clearTimers(): void {
    if (this.readTimer) clearTimeout(this.readTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.readTimer = null;
    this.reconnectTimer = null;
  }

  private setUp(up: boolean): void {
    if (this.up === up) return;
    this.up = up;
    this.handlers.connection(up);
  }
}

function detach(s: WebSocketLike): void {
  s.onopen = null;
  s.onmessage = null;
  s.onclose = null;
  s.onerror = () => {};
}

/** Node timers keep the process alive; an SDK's background work must not. (Browsers return a number.) */
export function unref(timer: unknown): void {
  (timer as { unref?: () => void } | null)?.unref?.();
}
