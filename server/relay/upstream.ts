/**
 * Following upstream (issue 13): one websocket per environment to the upstream's `GET /sdk/v1/stream?environment=`,
 * speaking the SDK protocol as a relay subscriber: a hello with the version the relay holds (so a reconnect gets only
 * the deltas it missed, or a snapshot when upstream's log no longer reaches), deltas applied in order (a gap or
 * garbage: resync), an ack per applied version, heartbeats checked (a silent connection is dropped), and reconnects
 * with the SDK's own backoff (sdk/backoff.ts). Upward it reports the SDKs connected to this relay (and those behind
 * relays below it) as `sdks` messages, coalesced and bounded, so that upstream's receipts and SDK list include them.
 */
import WebSocket from 'ws';
import type { StreamKey } from '@aviary/sdk/core';
import { Backoff } from '@aviary/sdk/backoff';
import {
  encodeMessage,
  isFinalCloseCode,
  parseServerMessage,
  SDKS_MESSAGE_LIMITS,
  type DownstreamSdk,
  type ServerMessage,
} from '@aviary/sdk/protocol';
import type { ConnectedSdkInfo } from '../stream/stream-hub.js';
import type { RelayState } from './relay-state.js';

/** Upstream connection states, as /readyz and /metrics report them. */
export type LinkState = 'connecting' | 'connected' | 'disconnected' | 'refused';

export interface UpstreamLinkOptions {
  upstream: string;
  token: string;
  environment: string;
  state: RelayState;
  /** This relay's SDKs of the environment (the hub's list: its own, and those behind relays below it, with `via`). */
  sdks: () => ConnectedSdkInfo[];
  /** Called after a snapshot or delta was applied (the disk cache writes it). */
  applied: (environment: string) => void;
  log: { warn(obj: unknown, msg: string): void; info(obj: unknown, msg: string): void };
  now?: () => number;
  /** Coalescing delay of `sdks` reports (ms). Default 20. */
  reportDelayMs?: number;
  backoff?: { initialMs?: number; maxMs?: number };
  sdkVersion?: string;
}

const isStreamKey = (k: unknown): k is StreamKey => {
  const o = k as Record<string, unknown> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.id === 'string' &&
    (o.kind === 'sdk' || o.kind === 'relay') &&
    typeof o.hash === 'string' &&
    /^[0-9a-f]{64}$/.test(o.hash) &&
    typeof o.name === 'string' &&
    typeof o.clientSide === 'boolean' &&
    (o.expiresAt === null || typeof o.expiresAt === 'number') &&
    (o.environments === null || (Array.isArray(o.environments) && o.environments.every((e) => typeof e === 'string')))
  );
};

export class UpstreamLink {
  state: LinkState = 'connecting';
  /** The newest version upstream announced (delta, resumed, hydrate or heartbeat), and when it was first heard of. */
  upstreamVersion: number | null = null;
  upstreamVersionAt = 0;
  /** Snapshots and resumes received (a test asserts a reconnect resumed instead of rehydrating). */
  readonly stats = { hydrates: 0, resumes: 0, deltas: 0, reconnects: 0, sdkReports: 0 };
  private socket: WebSocket | null = null;
  private readonly backoff: Backoff;
  private retryTimer: NodeJS.Timeout | null = null;
  private readTimer: NodeJS.Timeout | null = null;
  private reportTimer: NodeJS.Timeout | null = null;
  private heartbeatMs = 15_000;
  private closed = false;
  private resyncing = false;
  /** What upstream was last told about this relay's SDKs (id → JSON of the entry). */
  private reported = new Map<string, string>();
  private readonly now: () => number;
  readonly sdkId = `relay-${Math.random().toString(36).slice(2, 12)}`;

  constructor(private readonly o: UpstreamLinkOptions) {
    this.now = o.now ?? Date.now;
    this.backoff = new Backoff({ initialMs: o.backoff?.initialMs ?? 500, maxMs: o.backoff?.maxMs ?? 10_000 });
  }

  start(): void {
    this.connect();
  }

  close(): void {
    this.closed = true;
    for (const t of [this.retryTimer, this.readTimer, this.reportTimer]) if (t) clearTimeout(t);
    this.socket?.close(1000, 'relay stopping');
    this.socket = null;
  }

  /** This relay's SDKs changed: tell upstream soon (coalesced). */
  sdksChanged(): void {
    if (this.reportTimer || this.state !== 'connected') return;
    this.reportTimer = setTimeout(() => {
      this.reportTimer = null;
      this.report();
    }, this.o.reportDelayMs ?? 20);
    this.reportTimer.unref();
  }

  private connect(): void {
    if (this.closed) return;
    this.state = 'connecting';
    const url = `${this.o.upstream.replace(/\/+$/, '').replace(/^http/, 'ws')}/sdk/v1/stream?environment=${encodeURIComponent(this.o.environment)}`;
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.o.token}` }, perMessageDeflate: false });
    this.socket = ws;
    let refused = false;
    let goodbye: { retryAfterMs?: number; reconnectWindowMs?: number } | undefined;
    ws.on('open', () => {
      const lastVersion = this.o.state.version(this.o.environment);
      ws.send(
        encodeMessage({
          type: 'hello',
          sdkId: this.sdkId,
          sdkVersion: this.o.sdkVersion ?? 'relay',
          app: { name: 'aviary-relay' },
          ...(lastVersion !== null ? { lastVersion } : {}),
        }),
      );
      this.readTimeout(10_000);
    });
    ws.on('message', (data, isBinary) => {
      if (ws !== this.socket || isBinary) return;
      const parsed = parseServerMessage(data.toString());
      if (!parsed.ok) return this.resync(`unparseable: ${parsed.error}`);
      const m = parsed.message;
      if (m.type === 'error') {
        goodbye = m;
        if (m.code === 'unauthorized' || m.code === 'forbidden' || m.code === 'revoked') refused = true;
        this.o.log.warn({ environment: this.o.environment, code: m.code, message: m.message }, 'upstream closes the relay stream');
        return;
      }
      this.readTimeout(2 * this.heartbeatMs + 1000);
      this.onMessage(ws, m);
    });
    ws.on('close', (code) => {
      if (ws !== this.socket) return;
      this.socket = null;
      if (this.readTimer) clearTimeout(this.readTimer);
      if (this.closed) return;
      this.backoff.disconnected(this.now());
      this.reported = new Map();
      if (refused || isFinalCloseCode(code)) {
        // Final for an SDK; a relay keeps serving what it has and keeps trying slowly (the token may be re-issued
        // upstream by configuration), but says so in /readyz.
        this.state = 'refused';
      } else this.state = 'disconnected';
      this.stats.reconnects++;
      const delay = Math.max(this.backoff.next(goodbye?.reconnectWindowMs), goodbye?.retryAfterMs ?? 0, this.state === 'refused' ? 5_000 : 0);
      this.retryTimer = setTimeout(() => this.connect(), delay);
      this.retryTimer.unref();
    });
    ws.on('error', (err) => {
      if (ws === this.socket && this.state === 'connecting')
        this.o.log.warn({ environment: this.o.environment, err: err.message }, 'cannot reach upstream');
    });
  }

  private onMessage(ws: WebSocket, m: Exclude<ServerMessage, { type: 'error' }>): void {
    const env = this.o.environment;
    const st = this.o.state;
    this.heard(m.version);
    switch (m.type) {
      case 'hydrate': {
        const keys = (m as { keys?: unknown }).keys;
        if (!Array.isArray(keys) || !keys.every(isStreamKey)) return this.resync('hydrate without valid keys');
        this.heartbeatMs = m.heartbeatMs;
        st.hydrate({ ...m.snapshot, environment: env }, keys, 'upstream');
        this.stats.hydrates++;
        this.live(ws);
        break;
      }
      case 'resumed':
        this.heartbeatMs = m.heartbeatMs;
        if (st.version(env) !== m.version) return this.resync(`resumed at ${m.version}, have ${st.version(env)}`);
        st.confirmed(env);
        this.stats.resumes++;
        this.live(ws);
        break;
      case 'delta': {
        if (this.resyncing) return;
        for (const c of m.changes) if (c.type === 'key.upsert' && !isStreamKey(c.key)) return this.resync('bad key change');
        const result = st.apply(env, { version: m.version, changes: m.changes }, m.prev);
        if (result === 'gap') return this.resync(`gap: have ${st.version(env)}, delta ${m.prev} → ${m.version}`);
        if (result === 'applied') this.stats.deltas++;
        break;
      }
      case 'heartbeat':
        if (m.version > (st.version(env) ?? -1) && !this.resyncing) return this.resync('behind the heartbeat');
        return;
    }
    const version = st.version(env);
    if (version !== null) {
      ws.send(encodeMessage({ type: 'ack', version, appliedAt: this.now() }));
      this.o.applied(env);
    }
  }

  private live(ws: WebSocket): void {
    this.resyncing = false;
    if (this.state !== 'connected') {
      this.state = 'connected';
      this.backoff.connected(this.now());
      this.o.log.info({ environment: this.o.environment, version: this.o.state.version(this.o.environment) }, 'following upstream');
    }
    if (ws === this.socket) this.sdksChanged();
  }

  private heard(version: number): void {
    if (this.upstreamVersion === null || version > this.upstreamVersion) {
      this.upstreamVersion = version;
      this.upstreamVersionAt = this.now();
    }
  }

  /** Versions and ms this relay is behind what upstream announced. */
  lag(): { versions: number; ms: number } {
    const served = this.o.state.version(this.o.environment) ?? 0;
    const versions = Math.max(0, (this.upstreamVersion ?? served) - served);
    return { versions, ms: versions > 0 ? this.now() - this.upstreamVersionAt : 0 };
  }

  private resync(reason: string): void {
    const ws = this.socket;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    this.o.log.warn({ environment: this.o.environment, reason }, 'resyncing with upstream');
    this.resyncing = true;
    ws.send(encodeMessage({ type: 'resync', reason: reason.slice(0, 200) }));
  }

  private readTimeout(ms: number): void {
    if (this.readTimer) clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => this.socket?.terminate(), ms);
    this.readTimer.unref();
  }

  /** Sends what changed in this relay's SDK list since the last report, in bounded messages. */
  private report(): void {
    const ws = this.socket;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.state !== 'connected') return;
    const current = new Map<string, string>();
    const upsert: DownstreamSdk[] = [];
    for (const s of this.o.sdks()) {
      const entry: DownstreamSdk = {
        id: s.id,
        sdkVersion: s.sdk.version,
        appliedVersion: s.appliedVersion,
        appliedAt: s.appliedAt,
        connectedAt: s.connectedAt,
        via: (s.via ?? []).slice(0, SDKS_MESSAGE_LIMITS.via),
      };
      if (s.app) entry.app = s.app;
      const json = JSON.stringify(entry);
      current.set(s.id, json);
      if (this.reported.get(s.id) !== json) upsert.push(entry);
    }
    const remove = [...this.reported.keys()].filter((id) => !current.has(id));
    this.reported = current;
    // An entry is at most ~1.4 KB (ids, app, a via of 8 names): 40 upserts and 40 removals stay within the byte bound.
    const per = 40;
    for (let i = 0; i < Math.max(upsert.length, remove.length); i += per) {
      ws.send(JSON.stringify({ type: 'sdks', upsert: upsert.slice(i, i + per), remove: remove.slice(i, i + per) }));
      this.stats.sdkReports++;
    }
  }
}
