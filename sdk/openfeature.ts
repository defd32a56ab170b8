/**
 * `AviaryProvider`: the Aviary SDK as an OpenFeature provider for `@openfeature/server-sdk` (an optional peer
 * dependency: only this entry point imports it). Evaluation stays local; reasons and error codes are mapped to
 * OpenFeature's, and the client's events become provider events.
 *
 *   await OpenFeature.setProviderAndWait(new AviaryProvider({ baseUrl, sdkKey }));
 */
import {
  ErrorCode,
  OpenFeatureEventEmitter,
  ProviderEvents,
  StandardResolutionReasons,
  type EvaluationContext as OFContext,
  type JsonValue as OFJsonValue,
  type Provider,
  type ResolutionDetails,
  type TrackingEventDetails,
} from '@openfeature/server-sdk';
import { createClient, type AviaryClient, type ClientOptions } from './client.js';
import type { Outcome } from './evaluator.js';
import type { AttributeValue, ErrorCode as AviaryErrorCode, EvaluationContext, EvaluationDetail, JsonValue } from './core/types.js';

const ERROR_CODES: Record<AviaryErrorCode, ErrorCode> = {
  FLAG_NOT_FOUND: ErrorCode.FLAG_NOT_FOUND,
  WRONG_TYPE: ErrorCode.TYPE_MISMATCH,
  MALFORMED_FLAG: ErrorCode.PARSE_ERROR,
  NOT_READY: ErrorCode.PROVIDER_NOT_READY,
  GENERAL: ErrorCode.GENERAL,
};

/** OpenFeature's context → Aviary's: `targetingKey` is the context key; dates become ISO strings; nested objects are dropped. */
export function toAviaryContext(context: OFContext | undefined): EvaluationContext {
  const out: EvaluationContext = {};
  if (!context) return out;
  for (const [name, v] of Object.entries(context)) {
    if (name === 'targetingKey') continue;
    const a = toAttribute(v);
    if (a !== undefined) out[name] = a;
  }
  if (typeof context.targetingKey === 'string') out.key = context.targetingKey;
  return out;
}

function toAttribute(v: unknown): AttributeValue | undefined {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) {
    const items = v.filter((x): x is string | number | boolean => typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean');
    return items;
  }
  return undefined;
}

/** Aviary's evaluation detail → OpenFeature resolution details (reason, variant, error code, metadata). */
export function toResolution<T>(d: EvaluationDetail<T>): ResolutionDetails<T> {
  const r = d.reason;
  const flagMetadata: Record<string, string | number | boolean> = { aviaryReason: r.kind };
  if (r.ruleId !== undefined) flagMetadata.ruleId = r.ruleId;
  if (r.ruleIndex !== undefined) flagMetadata.ruleIndex = r.ruleIndex;
  if (r.bucket !== undefined) flagMetadata.bucket = r.bucket;
  if (r.bucketByMissing) flagMetadata.bucketByMissing = true;
  if (r.prerequisiteKey !== undefined) flagMetadata.prerequisiteKey = r.prerequisiteKey;
  const base = { value: d.value, flagMetadata, ...(d.variant !== undefined ? { variant: d.variant } : {}) };
  switch (r.kind) {
    case 'OFF':
      return { ...base, reason: StandardResolutionReasons.DISABLED };
    case 'TARGET_MATCH':
      return { ...base, reason: StandardResolutionReasons.TARGETING_MATCH };
    case 'RULE_MATCH':
      return { ...base, reason: r.inRollout ? StandardResolutionReasons.SPLIT : StandardResolutionReasons.TARGETING_MATCH };
    case 'FALLTHROUGH':
      return { ...base, reason: r.inRollout ? StandardResolutionReasons.SPLIT : StandardResolutionReasons.DEFAULT };
    case 'PREREQUISITE_FAILED':
      // Not one of OpenFeature's standard reasons (its reason is an open string); LaunchDarkly's providers say the same.
      return { ...base, reason: 'PREREQUISITE_FAILED' };
    case 'ERROR': {
      const code = d.errorCode ?? r.errorCode ?? 'GENERAL';
      return { ...base, reason: StandardResolutionReasons.ERROR, errorCode: ERROR_CODES[code] ?? ErrorCode.GENERAL, errorMessage: code };
    }
  }
}

/** OpenFeature tracking details → an Aviary outcome (see `AviaryProvider.track`). */
export function toOutcome(details: TrackingEventDetails): Outcome {
  return {
    ...(typeof details.error === 'boolean' ? { error: details.error } : {}),
    ...(typeof details.latencyMs === 'number' && Number.isFinite(details.latencyMs) ? { latencyMs: details.latencyMs } : {}),
    ...(typeof details.value === 'number' && Number.isFinite(details.value) ? { value: details.value } : {}),
  };
}

function isClient(v: unknown): v is AviaryClient {
  return typeof v === 'object' && v !== null && typeof (v as AviaryClient).variationDetail === 'function';
}

/**
 * An OpenFeature provider backed by an Aviary client. Construct it with the options of `createClient` (it owns
 * that client and closes it with the provider) or with an existing client (left open on close).
 */
export class AviaryProvider implements Provider {
  readonly metadata = { name: 'aviary' } as const;
  readonly runsOn = 'server' as const;
  readonly hooks = [];
  /** READY, CONFIGURATION_CHANGED (with the changed flag keys), STALE and ERROR. */
  readonly events = new OpenFeatureEventEmitter();
  /** The underlying Aviary client (for `measure`, `flush`, diagnostics). */
  readonly client: AviaryClient;
  private readonly owned: boolean;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(clientOrOptions: AviaryClient | ClientOptions) {
    this.owned = !isClient(clientOrOptions);
    this.client = isClient(clientOrOptions) ? clientOrOptions : createClient(clientOrOptions);
    let initialized = false;
    this.unsubscribe.push(
      this.client.on('change', (flagsChanged) => this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged })),
      this.client.on('stale', () => this.events.emit(ProviderEvents.Stale, { message: 'stream disconnected; serving last-known flags' })),
      // The SDK emits READY itself when initialize() resolves; later ones mark recovery from STALE or ERROR.
      this.client.on('ready', () => initialized && this.events.emit(ProviderEvents.Ready)),
      this.client.on('error', (err) => this.events.emit(ProviderEvents.Error, { message: err.message })),
    );
    this.markInitialized = () => {
      initialized = true;
    };
  }

  private readonly markInitialized: () => void;

  /** Resolves once the client has its first snapshot; rejects (provider ERROR) on timeout or a bad key. */
  async initialize(): Promise<void> {
    try {
      await this.client.ready();
    } finally {
      this.markInitialized();
    }
  }

  async onClose(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    if (this.owned) await this.client.close();
  }

  resolveBooleanEvaluation(flagKey: string, defaultValue: boolean, context: OFContext): Promise<ResolutionDetails<boolean>> {
    return Promise.resolve(toResolution(this.client.variationDetail(flagKey, toAviaryContext(context), defaultValue)));
  }

  resolveStringEvaluation(flagKey: string, defaultValue: string, context: OFContext): Promise<ResolutionDetails<string>> {
    return Promise.resolve(toResolution(this.client.variationDetail(flagKey, toAviaryContext(context), defaultValue)));
  }

  resolveNumberEvaluation(flagKey: string, defaultValue: number, context: OFContext): Promise<ResolutionDetails<number>> {
    return Promise.resolve(toResolution(this.client.variationDetail(flagKey, toAviaryContext(context), defaultValue)));
  }

  resolveObjectEvaluation<T extends OFJsonValue>(flagKey: string, defaultValue: T, context: OFContext): Promise<ResolutionDetails<T>> {
    const d = this.client.variationDetail(flagKey, toAviaryContext(context), defaultValue as JsonValue);
    return Promise.resolve(toResolution(d) as ResolutionDetails<T>);
  }

  /**
   * OpenFeature tracking as Aviary outcomes, which feed the canary guard. An outcome belongs to a flag: it is
   * attributed to the variant that flag serves `context` (evaluated again, not counted again). The flag is
   * `details.flagKey` when it is a string, else the event name itself (`track('new-checkout', ctx, { error: true })`).
   * Details: `error` (boolean: the work failed), `latencyMs` (number, milliseconds), `value` (number, OpenFeature's
   * standard field: summed per variant). Other fields are ignored; a detail of the wrong type is left out, never
   * coerced. Never throws.
   */
  track(trackingEventName: string, context: OFContext, details: TrackingEventDetails = {}): void {
    const flagKey = typeof details.flagKey === 'string' && details.flagKey !== '' ? details.flagKey : trackingEventName;
    this.client.track(flagKey, toAviaryContext(context), toOutcome(details));
  }
}
