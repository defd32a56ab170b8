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
  private _socket: WebSocketLike | null = null;
  private readonly _backoff: Backoff;
  private readonly _now: () => number;
  private _reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private _readTimer: ReturnType<typeof setTimeout> | null = null;
  private _readTimeoutMs: number;
  /** When the connection last said anything; the read timer checks it instead of being re-armed per message. */
  private _lastMessageAt = 0;
  private _resyncing = false;
  private _resyncs = 0;
  private _retryAfterMs = 0;
  private _stopped = false;
  private _up = false;
  private _serverError: string | null = null;
  /** Counters for diagnostics and tests. */
  readonly stats = { connects: 0, resyncs: 0, garbled: 0, ignored: 0, gaps: 0 };

  constructor(
    private readonly _options: StreamOptions,
    private readonly _handlers: StreamHandlers,
  ) {
    const options = _options;
    this._now = options.now ?? Date.now;
    this._backoff = new Backoff(options.backoff, options.random);
    this._readTimeoutMs = options.connectTimeoutMs ?? 10_000;
  }

  /** Opens the connection (and keeps it open until `stop()`). */
  start(): void {
    this._stopped = false;
    void this._connect();
  }

  /** Closes for good: no reconnect. */
  stop(): void {
    this._stopped = true;
    this._clearTimers();
    const s = this._socket;
    this._socket = null;
    if (s) {
      detach(s);
      try {
        s.close(1000, 'client closed');
      } catch {
        // already closed
      }
    }
    this._setUp(false);
  }

  /** True while a connection is open and has delivered a snapshot. */
  get connected(): boolean {
    return this._up;
  }

  private async _connect(): Promise<void> {
    if (this._stopped || this._socket) return;
    let ws: { ctor: WebSocketConstructor; headers: boolean };
    try {
      ws = await this._options.webSocket();
    } catch (err) {
      this._stopped = true;
      this._handlers.error(new Error(`no WebSocket implementation available: ${String(err)}`), true);
      return;
    }
    if (this._stopped || this._socket) return;
    const url = this._options.baseUrl.replace(/^http/, 'ws').replace(/\/+$/, '') + '/sdk/v1/stream';
    let socket: WebSocketLike;
    try {
      socket = ws.headers
        ? new ws.ctor(url, [STREAM_PROTOCOL], { headers: { authorization: `Bearer ${this._options.sdkKey}` }, perMessageDeflate: false })
        : new ws.ctor(url, [STREAM_PROTOCOL, KEY_PROTOCOL_PREFIX + this._options.sdkKey]);
    } catch (err) {
      this._handlers.error(new Error(`cannot open stream: ${String(err)}`), false);
      this._scheduleReconnect();
      return;
    }
    this.stats.connects++;
    this._socket = socket;
    this._resyncing = false;
    this._resyncs = 0;
    this._retryAfterMs = 0;
    this._readTimeoutMs = this._options.connectTimeoutMs ?? 10_000;
    this._armReadTimer();
    socket.onopen = () => {
      const hello: ClientMessage = { type: 'hello', sdkId: this._options.sdkId, sdkVersion: this._options.sdkVersion };
      if (this._options.app) hello.app = this._options.app;
      const v = this._handlers.version();
      if (v !== undefined) hello.lastVersion = v;
      this._send(hello);
    };
    socket.onmessage = (ev) => this._onMessage(socket, ev.data);
    socket.onclose = (ev) => this._onClose(socket, ev.code, ev.reason);
    // An error is always followed by a close; the close decides what happens next.
    socket.onerror = () => {};
  }

  private _onMessage(socket: WebSocketLike, data: unknown): void {
    if (socket !== this._socket) return;
    this._lastMessageAt = this._now();
    const text = typeof data === 'string' ? data : String(data);
    const parsed = parseServerMessage(text);
    if (!parsed.ok) {
      this.stats.garbled++;
      this._resync(`unparseable message: ${parsed.error}`);
      return;
    }
    const m = parsed.message;
    switch (m.type) {
      case 'hydrate': {
        this._readTimeoutMs = m.heartbeatMs * 2 + 1_000;
        this._armReadTimer();
        if (!this._safely(() => this._handlers.hydrate(m))) {
          this._resync('snapshot could not be applied');
          return;
        }
        this._synced(m.version);
        return;
      }
      case 'delta': {
        const current = this._handlers.version();
        if (this._resyncing) {
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
          this._resync(`gap: have ${current ?? 'nothing'}, delta builds on ${m.prev}`);
          return;
        }
        let notify: false | (() => void) = false;
        try {
          notify = this._handlers.delta(m);
        } catch {
          // counts as not applied
        }
        if (notify === false) {
          this._resync('delta could not be applied');
          return;
        }
        this._ack(m.version);
        notify();
        return;
      }
      case 'resumed': {
        this._readTimeoutMs = m.heartbeatMs * 2 + 1_000;
        this._armReadTimer();
        if (this._handlers.version() !== m.version) {
          this._resync(`resumed at ${m.version}, have ${this._handlers.version() ?? 'nothing'}`);
          return;
        }
        this._synced(m.version);
        return;
      }
      case 'heartbeat': {
        const current = this._handlers.version();
        if (!this._resyncing && current !== undefined && m.version > current) {
          this.stats.gaps++;
          this._resync(`behind: have ${current}, server at ${m.version}`);
        }
        return;
      }
      case 'error':
        // The close that follows decides what it means (final or not); keep the explanation for it.
        if (m.retryAfterMs !== undefined) this._retryAfterMs = m.retryAfterMs;
        this._serverError = `${m.code}: ${m.message}`;
        return;
    }
  }

  /** In step with the server at `version` (after a snapshot or a resume): healthy again, and say so. */
  private _synced(version: number): void {
    this._resyncing = false;
    this._resyncs = 0;
    this._backoff.connected(this._now());
    this._setUp(true);
    this._ack(version);
  }

  /** Runs an apply step; one that throws counts as not applied (resync), never as an exception in the app. */
  private _safely(apply: () => boolean): boolean {
    try {
      return apply();
    } catch {
      return false;
    }
  }

  /** Asks for a fresh snapshot; after too many in a row, reconnects instead (the server may be confused too). */
  private _resync(reason: string): void {
    this.stats.resyncs++;
    this._resyncing = true;
    if (++this._resyncs > MAX_RESYNCS) {
      this._drop(CloseCode.PROTOCOL_ERROR, 'too many resyncs');
      return;
    }
    this._send({ type: 'resync', reason });
  }

  private _ack(version: number): void {
    this._send({ type: 'ack', version, appliedAt: this._now() });
  }

  private _send(message: ClientMessage): void {
    const s = this._socket;
    if (!s || s.readyState !== OPEN) return;
    try {
      s.send(encodeMessage(message));
    } catch {
      // the close event follows
    }
  }

  private _onClose(socket: WebSocketLike, code: number, reason: string): void {
    if (socket !== this._socket) return;
    this._socket = null;
    detach(socket);
    this._clearTimers();
    this._backoff.disconnected(this._now());
    this._setUp(false);
    if (this._stopped) return;
    const why = this._serverError ?? (reason || 'no reason given');
    this._serverError = null;
    if (isFinalCloseCode(code)) {
      this._stopped = true;
      this._handlers.error(new Error(`stream closed by server with ${code} (${why}); not reconnecting`), true);
      return;
    }
    if (code >= 4000) this._handlers.error(new Error(`stream closed by server with ${code} (${why}); reconnecting`), false);
    this._scheduleReconnect();
  }

  /** Closes a connection we gave up on without waiting for the closing handshake, then reconnects. */
  private _drop(code: number, reason: string): void {
    const s = this._socket;
    if (!s) return;
    const terminate = (s as { terminate?: () => void }).terminate;
    try {
      if (typeof terminate === 'function') terminate.call(s);
      else s.close(code, reason);
    } catch {
      // already gone
    }
    this._onClose(s, code, reason);
  }

  private _scheduleReconnect(): void {
    if (this._stopped || this._reconnectTimer) return;
    const delay = Math.max(this._backoff.next(), this._retryAfterMs);
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      void this._connect();
    }, delay);
    unref(this._reconnectTimer);
  }

  /**
   * (Re)starts the read timeout from now. Messages only move `lastMessageAt`; when the timer fires early it re-arms
   * for the remainder, so a busy connection costs no timer work per message.
   */
  private _armReadTimer(): void {
    this._lastMessageAt = this._now();
    if (this._readTimer) clearTimeout(this._readTimer);
    const check = (): void => {
      const idle = this._now() - this._lastMessageAt;
      if (idle < this._readTimeoutMs) {
        this._readTimer = setTimeout(check, this._readTimeoutMs - idle);
        unref(this._readTimer);
        return;
      }
      this._readTimer = null;
      this._drop(CloseCode.GOING_AWAY, 'read timeout');
    };
    this._readTimer = setTimeout(check, this._readTimeoutMs);
    unref(this._readTimer);
  }

  private _clearTimers(): void {
    if (this._readTimer) clearTimeout(this._readTimer);
    if (this._reconnectTimer) clearTimeout(this._reconnectTimer);
    this._readTimer = null;
    this._reconnectTimer = null;
  }

  private _setUp(up: boolean): void {
    if (this._up === up) return;
    this._up = up;
    this._handlers.connection(up);
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
