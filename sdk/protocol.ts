/**
 * The wire format shared by the server and the SDK: metrics reports and the stream's messages. The changes an
 * environment goes through (`Change`, `Delta`) are the core's types (evaluation applies them), re-exported here
 * so that both sides import the wire format from one place.
 */
import type { Change, EnvironmentSnapshot, StreamKey } from './core/types.js';

export type { Change, Delta, StreamKey } from './core/types.js';

/**
 * What an SDK instance sends to `POST /sdk/v1/metrics`. `sdkId` is random per SDK instance and `seq` increases by
 * one per report; the server counts each (sdkId, seq) exactly once, so a report retried after a lost response is
 * acknowledged again but not counted twice.
 */
export interface MetricsReport {
  sdkId: string;
  seq: number;
  /** Optional identification, shown in the console. */
  app?: { name?: string; version?: string };
  sdk?: { name: string; version: string };
  stats: VariantStats[];
}

/** Evaluations and outcomes of one flag variant in one minute, as counted by one SDK instance. */
export interface VariantStats {
  flag: string;
  /** The served variant, or null when the caller's default was returned (unknown flag, wrong type, ...). */
  variant: string | null;
  /** Start of the minute (epoch milliseconds, a multiple of 60,000). */
  minute: number;
  evaluations: number;
  /** Evaluations broken down by reason kind (OFF, TARGET_MATCH, RULE_MATCH, FALLTHROUGH, ERROR). */
  reasons?: Partial<Record<import('./core/types.js').ReasonKind, number>>;
  /** Outcomes recorded with `track()` for contexts served this variant. */
  outcomes: number;
  /** Outcomes with `error: true`. */
  errors: number;
  /** Latency histogram of outcomes with `latencyMs` (see core/histogram.ts). */
  latency?: import('./core/histogram.js').SparseHistogram;
  /** Sum and count of numeric `value` outcomes. */
  valueSum?: number;
  valueCount?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// The stream (`GET /sdk/v1/stream`): message envelope shared by the server hub and the SDK's stream client.
// Documented in docs/stream-protocol.md.
// ---------------------------------------------------------------------------------------------------------------

/** Version of the stream protocol; offered by browsers as the `aviary.v1` subprotocol. */
export const STREAM_PROTOCOL = 'aviary.v1';
/**
 * Prefix of the subprotocol that carries a browser's SDK key, since browsers cannot set headers on a websocket
 * (SDK keys are base64url, which is valid in a subprotocol token). The server never echoes it.
 */
export const KEY_PROTOCOL_PREFIX = 'aviary-sdk-key.';

/**
 * Close codes the hub uses. 4001/4003 are final (the client does not retry: a bad or revoked key stays bad);
 * every other code makes the client reconnect with backoff and resume from its last applied version.
 */
export const CloseCode = {
  /** The server is shutting down or restarting: reconnect and resume. */
  GOING_AWAY: 1001,
  /** Missing or unknown SDK key. Final. */
  UNAUTHORIZED: 4001,
  /** The key was revoked or may not read this environment. Final. */
  FORBIDDEN: 4003,
  /** The client read too slowly and its send buffer passed the bound: reconnect after `retryAfterMs` and resume. */
  SLOW_CONSUMER: 4008,
  /** The client sent something the server could not parse, or never said hello. */
  PROTOCOL_ERROR: 4000,
} as const;

/** Close codes after which a client must not reconnect. */
export function isFinalCloseCode(code: number): boolean {
  return code === CloseCode.UNAUTHORIZED || code === CloseCode.FORBIDDEN;
}

/** First message on a connection: the full environment. Everything before it is replaced. */
export interface HydrateMessage {
  type: 'hydrate';
  version: number;
  snapshot: EnvironmentSnapshot;
  /** The interval at which the server sends heartbeats, so the client can set its read timeout. */
  heartbeatMs: number;
  /**
   * Relay subscribers only (docs/stream-protocol.md, "Relays"): the keys that may read this environment (SDK keys,
   * and relay tokens covering it), as stored hashes, so a relay checks them without a round trip. SDKs never get it.
   */
  keys?: StreamKey[];
}

/** One committed write. `prev` is the version it builds on: a client whose version differs has missed something. */
export interface DeltaMessage {
  type: 'delta';
  version: number;
  prev: number;
  changes: Change[];
}

/**
 * Ends a resume: the deltas the client missed (possibly none) were sent before it, and the client is now at
 * `version`. (A client that could not resume gets a `hydrate` instead.)
 */
export interface ResumedMessage {
  type: 'resumed';
  version: number;
  heartbeatMs: number;
}

/** Sent every `heartbeatMs` when nothing else was: proves the connection is alive. */
export interface HeartbeatMessage {
  type: 'heartbeat';
  /** The environment's current version (a client behind it resyncs). */
  version: number;
}

/** The server explains why it is about to close the connection (the close code says whether to retry). */
export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
  /** For retryable errors: reconnect no sooner than this. */
  retryAfterMs?: number;
  /**
   * Sent when the server shuts down (`going-away`, then close 1001): reconnect at a uniformly random moment within
   * this many ms, so its whole fleet does not arrive at the other replicas (or the restarted server) at once. A
   * client whose reconnects were already failing keeps its own, longer backoff. Older clients ignore it.
   */
  reconnectWindowMs?: number;
}

/** Everything the server sends on the stream. */
export type ServerMessage = HydrateMessage | DeltaMessage | ResumedMessage | HeartbeatMessage | ErrorMessage;

/** First message from the client. `lastVersion` asks to resume: only what was missed is sent, or a snapshot. */
export interface HelloMessage {
  type: 'hello';
  /** Random per SDK instance; the same id is used for metrics reports. */
  sdkId: string;
  app?: { name?: string; version?: string };
  sdkVersion: string;
  lastVersion?: number;
}

/** A delivery receipt: the client applied `version` at `appliedAt` (epoch milliseconds, client clock). */
export interface AckMessage {
  type: 'ack';
  version: number;
  appliedAt: number;
}

/** The client lost track (a gap, a message it could not parse): send a fresh snapshot. */
export interface ResyncMessage {
  type: 'resync';
  reason: string;
}

/**
 * A relay's SDKs (relay subscribers only): what the relay's own stream sees, sent upstream so that the upstream's
 * receipts and SDK list include them. Incremental: `upsert` replaces those ids' entries, `remove` drops ids.
 */
export interface SdksMessage {
  type: 'sdks';
  upsert: DownstreamSdk[];
  remove: string[];
}

/** One SDK behind a relay, as reported upstream. */
export interface DownstreamSdk {
  id: string;
  sdkVersion: string;
  app?: { name?: string; version?: string };
  appliedVersion: number | null;
  /** Epoch ms (the relay's clock), or null. */
  appliedAt: number | null;
  connectedAt: number;
  /**
   * Relays between the reporting relay and the SDK, nearest first ([] for the reporter's own SDKs). The upstream
   * prepends the reporter's name, taken from its token, never from the message.
   */
  via: string[];
}

/** Bounds of one `sdks` message (it is hostile input for the upstream). */
export const SDKS_MESSAGE_LIMITS = { bytes: 60_000, entries: 200, via: 8 } as const;

/** Everything the client sends on the stream. */
export type ClientMessage = HelloMessage | AckMessage | ResyncMessage | SdksMessage;

/** The outcome of parsing: a message, or why it was rejected (parsing never throws). */
export type ParseResult<T> = { ok: true; message: T } | { ok: false; error: string };

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON of unknown shape, read field by field and checked as it is read
function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isVersion(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function isKey(v: unknown): boolean {
  return typeof v === 'string' && v.length > 0 && v.length <= 256;
}

/** A rejected message; `error` is the path of the first field that is wrong (the server validated the prose). */
function fail(error: string): { ok: false; error: string } {
  return { ok: false, error };
}

// Just the shapes compilation relies on; the bodies are checked by the core when they are compiled.
const isFlag = (f: unknown) => isObject(f) && isKey(f.key) && isObject(f.state) && Array.isArray(f.variants);
const isSegment = (g: unknown) => isObject(g) && isKey(g.key);
// A change of a kind this client does not know (a newer server's, or one meant for relays) parses and is ignored.
const isChange = (c: unknown) =>
  isObject(c) &&
  (c.type === 'flag.upsert'
    ? isFlag(c.flag)
    : c.type === 'segment.upsert'
      ? isSegment(c.segment)
      : c.type === 'flag.delete' || c.type === 'segment.delete'
        ? isKey(c.key)
        : typeof c.type === 'string');

/** Where `items` is not an array of what `ok` accepts (`path`, or `path/index` of the first bad one), or ''. */
function badItem(items: unknown, ok: (v: unknown) => boolean, path: string): string {
  if (!Array.isArray(items)) return path;
  const i = items.findIndex((v) => !ok(v));
  return i < 0 ? '' : `${path}/${i}`;
}

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON of unknown shape, read field by field and checked as it is read
function parseJson(data: string): ParseResult<Record<string, any>> {
  try {
    const v: unknown = JSON.parse(data);
    return isObject(v) ? { ok: true, message: v } : fail('not an object');
  } catch {
    return fail('not JSON');
  }
}

/** What is wrong with a server message other than `error` (the path of the first bad field), or ''. */
// biome-ignore lint/suspicious/noExplicitAny: parsed JSON of unknown shape, read field by field and checked as it is read
function problem(m: Record<string, any>): string {
  const { type, version, snapshot: s } = m;
  if (!['hydrate', 'delta', 'resumed', 'heartbeat'].includes(type)) return '/type';
  if (!isVersion(version)) return `${type}/version`;
  if (type === 'hydrate') {
    if (!isObject(s) || s.version !== version) return 'hydrate/snapshot/version';
    return badItem(s.flags, isFlag, 'hydrate/snapshot/flags') || badItem(s.segments, isSegment, 'hydrate/snapshot/segments');
  }
  if (type !== 'delta') return '';
  if (!isVersion(m.prev) || m.prev >= version) return 'delta/prev';
  return badItem(m.changes, isChange, 'delta/changes');
}

/** Parses and validates a message from the server. Never throws: anything malformed is `{ ok: false }`. */
export function parseServerMessage(data: string): ParseResult<ServerMessage> {
  const r = parseJson(data);
  if (!r.ok) return r;
  const m = r.message;
  const type = m.type;
  const error = type === 'error' ? '' : problem(m);
  if (error !== '') return fail(error);
  // Optional fields that do not make sense get their defaults: no retry hints, the default heartbeat.
  for (const k of ['retryAfterMs', 'reconnectWindowMs']) if (!(m[k] >= 0 && typeof m[k] === 'number')) delete m[k];
  if (type === 'hydrate' || type === 'resumed') m.heartbeatMs = typeof m.heartbeatMs === 'number' && m.heartbeatMs > 0 ? m.heartbeatMs : 15_000;
  return { ok: true, message: m as ServerMessage };
}

/** Parses and validates a message from a client. Never throws. */
export function parseClientMessage(data: string): ParseResult<ClientMessage> {
  if (data.length > 4096)
    return data.length <= SDKS_MESSAGE_LIMITS.bytes && data.startsWith('{"type":"sdks"') ? parseSdks(data) : fail('message too large');
  const r = parseJson(data);
  if (!r.ok) return r;
  const m = r.message;
  switch (m.type) {
    case 'hello': {
      if (typeof m.sdkId !== 'string' || m.sdkId.length === 0 || m.sdkId.length > 128) return { ok: false, error: 'hello/sdkId: not an id' };
      if (typeof m.sdkVersion !== 'string' || m.sdkVersion.length > 64) return { ok: false, error: 'hello/sdkVersion: not a string' };
      if (m.lastVersion !== undefined && !isVersion(m.lastVersion)) return { ok: false, error: 'hello/lastVersion: not a version' };
      const hello: HelloMessage = { type: 'hello', sdkId: m.sdkId, sdkVersion: m.sdkVersion };
      if (isObject(m.app)) {
        const app: { name?: string; version?: string } = {};
        if (typeof m.app.name === 'string') app.name = m.app.name.slice(0, 128);
        if (typeof m.app.version === 'string') app.version = m.app.version.slice(0, 64);
        hello.app = app;
      }
      if (m.lastVersion !== undefined) hello.lastVersion = m.lastVersion as number;
      return { ok: true, message: hello };
    }
    case 'ack':
      if (!isVersion(m.version)) return { ok: false, error: 'ack/version: not a version' };
      if (typeof m.appliedAt !== 'number' || !Number.isFinite(m.appliedAt)) return { ok: false, error: 'ack/appliedAt: not a time' };
      return { ok: true, message: { type: 'ack', version: m.version, appliedAt: m.appliedAt } };
    case 'resync':
      return { ok: true, message: { type: 'resync', reason: String(m.reason ?? '').slice(0, 256) } };
    case 'sdks':
      return parseSdks(data);
    default:
      return fail('/type');
  }
}

/** Serializes a message for the wire (both directions). */
export function encodeMessage(message: ServerMessage | ClientMessage): string {
  return JSON.stringify(message);
}

const str = (v: unknown, max: number) => typeof v === 'string' && v.length > 0 && v.length <= max;

/**
 * Parses a relay's `sdks` report (hostile input: bounded in bytes, entries and path length; every field checked). Never
 * throws. Only relay subscribers may send it; the hub refuses it from SDKs.
 */
export function parseSdks(data: string): ParseResult<SdksMessage> {
  if (data.length > SDKS_MESSAGE_LIMITS.bytes) return fail('sdks: message too large');
  const r = parseJson(data);
  if (!r.ok) return r;
  const m = r.message;
  if (m.type !== 'sdks' || !Array.isArray(m.upsert) || !Array.isArray(m.remove)) return fail('sdks: upsert and remove must be arrays');
  if (m.upsert.length + m.remove.length > SDKS_MESSAGE_LIMITS.entries) return fail(`sdks: more than ${SDKS_MESSAGE_LIMITS.entries} entries`);
  const upsert: DownstreamSdk[] = [];
  for (const [i, e] of (m.upsert as unknown[]).entries()) {
    if (!isObject(e) || !str(e.id, 128) || typeof e.sdkVersion !== 'string' || e.sdkVersion.length > 64) return fail(`sdks/upsert/${i}`);
    if (!(e.appliedVersion === null || isVersion(e.appliedVersion)) || !(e.appliedAt === null || isVersion(e.appliedAt)) || !isVersion(e.connectedAt))
      return fail(`sdks/upsert/${i}`);
    if (!Array.isArray(e.via) || e.via.length > SDKS_MESSAGE_LIMITS.via || !e.via.every((v: unknown) => str(v, 128)))
      return fail(`sdks/upsert/${i}/via`);
    const sdk: DownstreamSdk = {
      id: e.id,
      sdkVersion: e.sdkVersion,
      appliedVersion: e.appliedVersion,
      appliedAt: e.appliedAt,
      connectedAt: e.connectedAt,
      via: [...e.via],
    };
    if (isObject(e.app)) {
      const app: { name?: string; version?: string } = {};
      if (typeof e.app.name === 'string') app.name = e.app.name.slice(0, 128);
      if (typeof e.app.version === 'string') app.version = e.app.version.slice(0, 64);
      sdk.app = app;
    }
    upsert.push(sdk);
  }
  if (!m.remove.every((id: unknown) => str(id, 128))) return fail('sdks/remove');
  return { ok: true, message: { type: 'sdks', upsert, remove: m.remove as string[] } };
}
