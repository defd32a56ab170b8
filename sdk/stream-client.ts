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
  parseServerMessage,
  type ClientMessage,
  type DeltaMessage,
  type ErrorMessage,
  type HydrateMessage,
} from './protocol.js';
import type { WebSocketFactory } from './websocket-browser.js';

/** The part of the WHATWG WebSocket interface the stream uses (met by browsers' `WebSocket` and by `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: closes without the closing handshake. */
  terminate?(): void;
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
  /** Replace everything with this snapshot. Throws if it could not be applied (then the stream resyncs). */
  hydrate(message: HydrateMessage): void;
  /**
   * Apply one delta (already checked to follow `version()`). Throws if it could not be applied; otherwise returns
   * what remains to tell the application, which runs after the ack is sent, so that listeners' work never delays
   * the delivery receipt of a kill.
   */
  delta(message: DeltaMessage): () => void;
  /** Connected and up to date, or not. */
  connection(up: boolean): void;
  /** A final failure (bad or revoked key) or a diagnostic; `fatal` means the stream stopped for good. */
  error(error: Error, fatal: boolean): void;
}

export interface StreamOptions {
  /** `http(s)://host:port` of the Aviary server, without a trailing slash. */
  baseUrl: string;
  sdkId: string;
  sdkVersion: string;
  app?: { name?: string; version?: string };
  /** Resolved lazily (the `ws` package is only imported on Node when nothing else is given). */
  webSocket: () => Promise<WebSocketFactory>;
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
  private _reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private _readTimer: ReturnType<typeof setTimeout> | undefined;
  private _readTimeoutMs = 0;
  /** When the connection last said anything; the read timer checks it instead of being re-armed per message. */
  private _lastMessageAt = 0;
  /** Resyncs asked for since the last good snapshot or resume; while above 0, deltas are ignored. */
  private _resyncs = 0;
  /** The server's explanation of the coming close (why, when to retry, over what window), if it gave one. */
  private _error: ErrorMessage | undefined;
  private _stopped = false;
  private _up = false;
  /** Counters for diagnostics and tests. */
  readonly stats = { connects: 0, resyncs: 0, garbled: 0, ignored: 0, gaps: 0 };

  constructor(
    private readonly _options: StreamOptions,
    private readonly _handlers: StreamHandlers,
  ) {
    this._now = _options.now ?? Date.now;
    this._backoff = new Backoff(_options.backoff, _options.random);
  }

  /** Opens the connection (and keeps it open until `stop()`). */
  start(): void {
    this._stopped = false;
    void this._connect();
  }

  /** Closes for good: no reconnect. (Events of the closed socket are ignored: it is no longer `_socket`.) */
  stop(): void {
    this._stopped = true;
    this._clearTimers();
    const s = this._socket;
    this._socket = null;
    try {
      s?.close(1000, 'client closed');
    } catch {
      // already closed
    }
    this._setUp(false);
  }

  /** True while a connection is open and has delivered a snapshot. */
  get connected(): boolean {
    return this._up;
  }

  private async _connect(): Promise<void> {
    const o = this._options;
    if (this._stopped || this._socket) return;
    let open: WebSocketFactory;
    try {
      open = await o.webSocket();
    } catch (err) {
      this._stopped = true;
      this._handlers.error(new Error(`no WebSocket implementation available: ${err}`), true);
      return;
    }
    if (this._stopped || this._socket) return;
    let socket: WebSocketLike;
    try {
      socket = open(o.baseUrl.replace(/^http/, 'ws') + '/sdk/v1/stream');
    } catch (err) {
      this._handlers.error(new Error(`cannot open stream: ${err}`), false);
      this._scheduleReconnect();
      return;
    }
    this.stats.connects++;
    this._socket = socket;
    this._resyncs = 0;
    this._error = undefined;
    this._armReadTimer(o.connectTimeoutMs ?? 10_000);
    // Undefined fields (no app, no version yet) are left out of the JSON.
    socket.onopen = () =>
      socket === this._socket &&
      this._send({ type: 'hello', sdkId: o.sdkId, sdkVersion: o.sdkVersion, app: o.app, lastVersion: this._handlers.version() });
    socket.onmessage = (ev) => socket === this._socket && this._onMessage(ev.data);
    socket.onclose = (ev) => this._onClose(socket, ev.code, ev.reason);
    // An error is always followed by a close; the close decides what happens next.
    socket.onerror = () => {};
  }

  private _onMessage(data: unknown): void {
    this._lastMessageAt = this._now();
    const parsed = parseServerMessage(String(data));
    if (!parsed.ok) {
      this.stats.garbled++;
      return this._resync(`unparseable message: ${parsed.error}`);
    }
    const m = parsed.message;
    if (m.type === 'error') {
      // The close that follows decides what it means (final or not); keep the explanation for it.
      this._error = m;
      return;
    }
    const current = this._handlers.version();
    const outOfStep = () => `have ${current ?? 'nothing'}, ${m.type} at ${m.version}`;
    if (m.type === 'heartbeat') {
      // A heartbeat ahead of us means something was missed.
      if (this._resyncs === 0 && current !== undefined && m.version > current) {
        this.stats.gaps++;
        this._resync(outOfStep());
      }
      return;
    }
    if (m.type === 'delta') {
      if (this._resyncs > 0 || (current !== undefined && m.version <= current)) {
        // Waiting for a snapshot, or a duplicate or late message from before a snapshot we already have.
        this.stats.ignored++;
        return;
      }
      if (m.prev !== current) {
        this.stats.gaps++;
        return this._resync(outOfStep());
      }
    } else {
      this._armReadTimer(m.heartbeatMs * 2 + 1_000);
      if (m.type === 'resumed' && current !== m.version) return this._resync(outOfStep());
    }
    let notify: (() => void) | undefined;
    try {
      if (m.type === 'delta') notify = this._handlers.delta(m);
      else if (m.type === 'hydrate') this._handlers.hydrate(m);
    } catch {
      return this._resync(`${m.type} could not be applied`);
    }
    if (m.type !== 'delta') {
      // In step with the server again (a snapshot or a resume): healthy, and say so.
      this._resyncs = 0;
      this._backoff.connected(this._now());
      this._setUp(true);
    }
    notify?.();
    // The receipt goes out on the next turn of the event loop: a process holding many clients (a server-side app
    // with several, a benchmark with hundreds) applies the change in all of them before paying for the writes.
    setTimeout(() => this._ack(m.version));
  }

  /** Asks for a fresh snapshot; after too many in a row, reconnects instead (the server may be confused too). */
  private _resync(reason: string): void {
    this.stats.resyncs++;
    if (++this._resyncs > MAX_RESYNCS) this._drop(CloseCode.PROTOCOL_ERROR, 'too many resyncs');
    else this._send({ type: 'resync', reason });
  }

  private _ack(version: number): void {
    this._send({ type: 'ack', version, appliedAt: this._now() });
  }

  private _send(message: ClientMessage): void {
    const s = this._socket;
    try {
      if (s?.readyState === OPEN) s.send(encodeMessage(message));
    } catch {
      // the close event follows
    }
  }

  private _onClose(socket: WebSocketLike, code: number, reason: string): void {
    if (socket !== this._socket) return;
    this._socket = null;
    this._clearTimers();
    this._backoff.disconnected(this._now());
    this._setUp(false);
    if (this._stopped) return;
    const e = this._error;
    const final = isFinalCloseCode(code);
    if (final) this._stopped = true;
    if (final || code >= 4000)
      this._handlers.error(
        new Error(
          `stream closed by server with ${code} (${e ? `${e.code}: ${e.message}` : reason || 'no reason given'}); ${final ? 'not ' : ''}reconnecting`,
        ),
        final,
      );
    this._scheduleReconnect(e);
  }

  /** Closes a connection we gave up on without waiting for the closing handshake, then reconnects. */
  private _drop(code: number, reason: string): void {
    const s = this._socket;
    if (!s) return;
    try {
      if (s.terminate) s.terminate();
      else s.close(code, reason);
    } catch {
      // already gone
    }
    this._onClose(s, code, reason);
  }

  /** After `goodbye`'s close: no sooner than its `retryAfterMs`, within its `reconnectWindowMs` if the backoff allows. */
  private _scheduleReconnect(goodbye?: ErrorMessage): void {
    if (this._stopped || this._reconnectTimer) return;
    const delay = Math.max(this._backoff.next(goodbye?.reconnectWindowMs), goodbye?.retryAfterMs ?? 0);
    this._reconnectTimer = unref(
      setTimeout(() => {
        this._reconnectTimer = undefined;
        void this._connect();
      }, delay),
    );
  }

  /**
   * (Re)starts the read timeout from now. Messages only move `lastMessageAt`; when the timer fires early it re-arms
   * for the remainder, so a busy connection costs no timer work per message.
   */
  private _armReadTimer(timeoutMs: number): void {
    this._readTimeoutMs = timeoutMs;
    this._lastMessageAt = this._now();
    clearTimeout(this._readTimer);
    const check = (): void => {
      const idle = this._now() - this._lastMessageAt;
      if (idle < this._readTimeoutMs) this._readTimer = unref(setTimeout(check, this._readTimeoutMs - idle));
      else this._drop(CloseCode.GOING_AWAY, 'read timeout');
    };
    this._readTimer = unref(setTimeout(check, timeoutMs));
  }

  private _clearTimers(): void {
    clearTimeout(this._readTimer);
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = undefined;
  }

  private _setUp(up: boolean): void {
    if (this._up !== up) this._handlers.connection((this._up = up));
  }
}

/** Node timers keep the process alive; an SDK's background work must not. (Browsers return a number.) */
export function unref<T>(timer: T): T {
  (timer as { unref?: () => void } | null)?.unref?.();
  return timer;
}
