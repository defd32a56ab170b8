/**
 * `createClient` (CONTRACT §7): local evaluation of one environment's flags, kept current by the stream, with
 * evaluation counts and outcomes reported in the background.
 */
import type { EnvironmentSnapshot, EvaluationContext, EvaluationDetail, JsonValue } from './core/types.js';
import { errorDetail } from './core/evaluate.js';
import type { PatternEngine } from './core/operators/pattern.js';
import { Emitter } from './emitter.js';
import { Evaluator, type Outcome } from './evaluator.js';
import { MetricsReporter, type ReporterStats } from './metrics-reporter.js';
import { StreamClient, unref, type WebSocketConstructor } from './stream-client.js';
import { defaultPatternEngine, webSocketFactory } from './websocket.js';
import type { BackoffOptions } from './backoff.js';

/** The SDK's version, sent in hello messages and metrics reports. */
export const SDK_VERSION = '0.1.0';

/** Options of `createClient` (and of `new AviaryProvider(...)`). */
export interface ClientOptions {
  /** `http(s)://host:port` of the Aviary server. */
  baseUrl: string;
  /** The environment's SDK key. */
  sdkKey: string;
  /** Shown in `GET /api/v1/environments/{env}/sdks` and metrics. */
  app?: { name?: string; version?: string };
  /** A snapshot to serve before (or instead of) the first one from the server, e.g. rendered into a page. */
  bootstrap?: EnvironmentSnapshot;
  /** No network at all: serve `bootstrap` (or defaults), count nothing anywhere. */
  offline?: boolean;
  /** `ready()` rejects after this long (ms). Default 10,000. */
  readyTimeoutMs?: number;
  /** Reconnect backoff. Defaults: first delay within 2 s, each window 4/3 of the last, at most 30 s, reset after 30 s of stable connection. */
  backoff?: BackoffOptions;
  /** WebSocket constructor. Default: the global `WebSocket`, else the `ws` package (Node 20). */
  WebSocket?: WebSocketConstructor;
  /**
   * How the stream sends the key: `header` (Authorization; Node `ws` only) or `protocol` (Sec-WebSocket-Protocol).
   * Bundles built for browsers (package.json `browser` field) always use `protocol`.
   */
  webSocketAuth?: 'header' | 'protocol';
  /** HTTP client for metrics. Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** Background metrics flush interval (ms); 0 disables background flushing. Default 10,000. */
  flushIntervalMs?: number;
  /** Reports kept while the server is unreachable. Default 32. */
  maxPendingReports?: number;
  /** Distinct (flag, variant) pairs counted between flushes. Default 10,000. */
  maxCountedPairs?: number;
  /** Clock (epoch ms), injectable for tests. */
  now?: () => number;
  /**
   * Accelerates `matches` patterns (same answers, still linear time). Default: on Node the lazy DFA (`lazyDfa`
   * from `@aviary/sdk/core`); in the browser bundle, which leaves the DFA out, none. `() => null` accelerates
   * nothing (the Pike VM alone).
   */
  patternEngine?: PatternEngine;
}

/** The value type a caller's default implies: `variation('f', ctx, false)` returns `boolean`. */
export type Widen<T> = T extends boolean ? boolean : T extends string ? string : T extends number ? number : T;

/** Events of a client. */
export interface ClientEvents extends Record<string, unknown[]> {
  /** Flags changed by a streamed update (after it was applied). */
  change: [flagKeys: string[]];
  /** The first snapshot is in place; emitted again when the stream recovers after `stale`. */
  ready: [];
  /** A stream or reporting problem. `fatal` errors (bad or revoked key) stop the stream for good. */
  error: [error: Error];
  /** The stream dropped: values are the last known ones and may be stale until it reconnects. */
  stale: [];
}

/** Diagnostics of a client. */
export interface ClientStatus {
  ready: boolean;
  connected: boolean;
  version: number | undefined;
  environment: string;
  reports: ReporterStats;
  droppedCounts: number;
  droppedOutcomes: number;
  stream: { connects: number; resyncs: number; garbled: number; ignored: number; gaps: number } | null;
}

/** An Aviary SDK client. Create with `createClient(options)`. */
export interface AviaryClient {
  /** Random id of this SDK instance (in receipts and metrics reports). */
  readonly sdkId: string;
  /**
   * Resolves once the first snapshot is in place (at once with `bootstrap` or `offline`). Rejects after
   * `timeoutMs` (default `readyTimeoutMs`) or on a fatal error; the client keeps serving defaults meanwhile and
   * becomes ready whenever a snapshot arrives.
   */
  ready(timeoutMs?: number): Promise<void>;
  /** The flag's value for `context`, or `defaultValue` (unknown flag, wrong type, not ready). Never throws. */
  variation<T extends JsonValue>(flagKey: string, context: EvaluationContext, defaultValue: T): Widen<T>;
  /** Like `variation`, with the variant and the reason (`ERROR`/`NOT_READY` before the first snapshot). */
  variationDetail<T extends JsonValue>(flagKey: string, context: EvaluationContext, defaultValue: T): EvaluationDetail<Widen<T>>;
  /** Every flag evaluated for `context` (not counted: listing flags is not a use of any one of them). */
  allFlags(context: EvaluationContext): Record<string, EvaluationDetail>;
  /** Subscribes to an event; returns a function that unsubscribes. */
  on<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): () => void;
  off<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): void;
  /** Records an outcome for the variant `context` is served (the evaluation itself is not counted again). */
  track(flagKey: string, context: EvaluationContext, outcome: Outcome): void;
  /**
   * Runs `fn` with the flag's value for `context` and records its latency and whether it threw (or its promise
   * rejected) as an outcome of the served variant; rethrows. The evaluation is counted once.
   */
  measure<T extends JsonValue, R>(flagKey: string, context: EvaluationContext, defaultValue: T, fn: (value: Widen<T>) => R): R;
  /** Sends pending counts and outcomes now. Resolves true when nothing is left pending. */
  flush(): Promise<boolean>;
  /** Stops the stream and the background flush, and sends what is pending. */
  close(): Promise<void>;
  /** The current snapshot (e.g. to bootstrap a browser client). */
  snapshot(): EnvironmentSnapshot | undefined;
  /** Diagnostics. */
  status(): ClientStatus;
}

function randomId(): string {
  return globalThis.crypto?.randomUUID?.() ?? Math.random().toString(36).slice(2) + Date.now().toString(36);
}

class Client extends Emitter<ClientEvents> implements AviaryClient {
  readonly sdkId = randomId();
  private readonly _flags: Evaluator;
  private readonly _stream: StreamClient | null = null;
  private readonly _reporter: MetricsReporter | null = null;
  private readonly _now: () => number;
  private _flushTimer: ReturnType<typeof setInterval> | undefined;
  /** Settles with the first snapshot, or rejects on a fatal error. */
  private readonly _readyPromise: Promise<void>;
  private _resolveReady!: () => void;
  private _rejectReady!: (e: Error) => void;
  /** Whether a snapshot (from the server, a bootstrap, or offline's empty one) is in place. */
  private _ready = false;
  private _closed = false;
  private _stale = false;

  constructor(private readonly _options: ClientOptions) {
    super();
    const options = _options;
    this._now = options.now ?? Date.now;
    this._flags = new Evaluator(undefined, {
      maxOutcomePairs: options.maxCountedPairs,
      patternEngine: options.patternEngine ?? defaultPatternEngine,
    });
    this._readyPromise = new Promise<void>((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    // Nobody may be awaiting ready(); a fatal error must not become an unhandled rejection.
    this._readyPromise.catch(() => {});
    // Offline, nothing will ever arrive: an empty environment, so unknown flags say FLAG_NOT_FOUND rather than NOT_READY.
    if (options.bootstrap || options.offline) this._load(options.bootstrap ?? { environment: '', version: 0, flags: [], segments: [] });
    if (options.offline) return;
    const baseUrl = options.baseUrl.replace(/\/+$/, '');
    const common = { ...options, baseUrl, sdkId: this.sdkId, sdkVersion: SDK_VERSION, now: this._now };
    const fetchImpl = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (fetchImpl) this._reporter = new MetricsReporter({ ...common, url: `${baseUrl}/sdk/v1/metrics`, fetch: fetchImpl });
    this._stream = new StreamClient(
      { ...common, webSocket: () => webSocketFactory(options) },
      {
        version: () => this._version,
        hydrate: (m) => {
          const first = !this._ready || this._flags.environment.environment === '';
          const changed = this._load(m.snapshot);
          if (first) this._emit('ready');
          else if (changed.length > 0) this._emit('change', changed);
        },
        delta: (m) => {
          const changed = this._flags.applyChanges(m.changes, m.version);
          return () => {
            if (changed.length > 0) this._emit('change', changed);
          };
        },
        connection: (up) => {
          if (this._closed) return;
          if (!up) {
            this._stale = true;
            this._emit('stale');
          } else if (this._stale) {
            // Current again after a stale period (the first snapshot's 'ready' is emitted by hydrate).
            this._stale = false;
            this._emit('ready');
          }
        },
        error: (err, fatal) => {
          if (fatal) this._rejectReady(err);
          this._emit('error', err);
        },
      },
    );
    this._stream.start();
    const interval = options.flushIntervalMs ?? 10_000;
    if (interval > 0 && this._reporter) {
      this._flushTimer = setInterval(() => void this.flush(), interval);
      unref(this._flushTimer);
    }
  }

  /** The version of the snapshot served, or undefined before the first. */
  private get _version(): number | undefined {
    return this._ready ? this._flags.environment.version : undefined;
  }

  /** Serves `snapshot` from now on; returns the keys of the flags it changed. */
  private _load(snapshot: EnvironmentSnapshot): string[] {
    const changed = this._flags.setEnvironment(snapshot);
    this._ready = true;
    this._resolveReady();
    return changed;
  }

  ready(timeoutMs = this._options.readyTimeoutMs ?? 10_000): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // Not unref'd: `await client.ready()` must settle (reject) rather than let Node exit mid-await.
      const timer = setTimeout(() => reject(new Error(`Aviary client not ready after ${timeoutMs} ms (serving defaults)`)), timeoutMs);
      this._readyPromise.then(resolve, reject).finally(() => clearTimeout(timer));
    });
  }

  variation<T extends JsonValue>(flagKey: string, context: EvaluationContext, defaultValue: T): Widen<T> {
    return this.variationDetail(flagKey, context, defaultValue).value;
  }

  variationDetail<T extends JsonValue>(flagKey: string, context: EvaluationContext, defaultValue: T): EvaluationDetail<Widen<T>> {
    const d = this._flags.evaluate(flagKey, context ?? {}, defaultValue as Widen<T>);
    // Before the first snapshot every flag is unknown (and counted as such); say why, never silently.
    return this._ready ? d : errorDetail(defaultValue as Widen<T>, 'NOT_READY');
  }

  allFlags(context: EvaluationContext): Record<string, EvaluationDetail> {
    return this._flags.evaluateAll(context ?? {});
  }

  track(flagKey: string, context: EvaluationContext, outcome: Outcome): void {
    try {
      this._flags.track(flagKey, context ?? {}, outcome ?? {});
    } catch {
      // tracking must never break the application
    }
  }

  measure<T extends JsonValue, R>(flagKey: string, context: EvaluationContext, defaultValue: T, fn: (value: Widen<T>) => R): R {
    const d = this.variationDetail(flagKey, context, defaultValue);
    const start = performance.now();
    const done = (error: boolean) => this._flags.record(flagKey, d.variant ?? null, { error, latencyMs: performance.now() - start });
    let result: R;
    try {
      result = fn(d.value);
    } catch (err) {
      done(true);
      throw err;
    }
    if (typeof (result as { then?: unknown } | null)?.then !== 'function') {
      done(false);
      return result;
    }
    return (result as PromiseLike<unknown>).then(
      (v) => {
        done(false);
        return v;
      },
      (err: unknown) => {
        done(true);
        throw err;
      },
    ) as R;
  }

  async flush(): Promise<boolean> {
    const rows = this._flags.drain(Math.floor(this._now() / 60_000) * 60_000);
    // Offline: counts are not sent anywhere, but must not pile up either.
    if (!this._reporter) return true;
    this._reporter.enqueue(rows);
    const ok = await this._reporter.send();
    if (!ok) this._emit('error', new Error('metrics report could not be sent; kept for the next flush'));
    return ok;
  }

  async close(): Promise<void> {
    if (this._closed) return;
    this._closed = true;
    clearInterval(this._flushTimer);
    this._stream?.stop();
    await this.flush().catch(() => false);
  }

  snapshot(): EnvironmentSnapshot | undefined {
    return this._ready ? this._flags.snapshot() : undefined;
  }

  status(): ClientStatus {
    return {
      ready: this._ready,
      connected: this._stream?.connected ?? false,
      version: this._version,
      environment: this._flags.environment.environment,
      reports: this._reporter?.stats ?? { sent: 0, failedAttempts: 0, droppedReports: 0, pending: 0 },
      droppedCounts: this._flags.droppedUnknownEvaluations,
      droppedOutcomes: this._flags.droppedOutcomes,
      stream: this._stream ? { ...this._stream.stats } : null,
    };
  }
}

/** Creates a client (CONTRACT §7). It connects at once; `await client.ready()` before relying on flag values. */
export function createClient(options: ClientOptions): AviaryClient {
  if (!options || typeof options.baseUrl !== 'string' || (!options.offline && typeof options.sdkKey !== 'string')) {
    throw new TypeError('createClient: baseUrl and sdkKey are required');
  }
  return new Client(options);
}
