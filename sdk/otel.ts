/**
 * `OpenTelemetryHook`: an OpenFeature hook that records every flag evaluation as a `feature_flag.evaluation` event on
 * the active OpenTelemetry span, with the attributes of the OpenTelemetry semantic conventions for feature flags
 * (as published in `@opentelemetry/semantic-conventions` 1.45: `feature_flag.key`, `feature_flag.provider.name`,
 * `feature_flag.result.variant`, `feature_flag.result.reason`, `feature_flag.context.id`, `error.type`,
 * `feature_flag.error.message`; `feature_flag.result.value` only when there is no variant, or when asked for).
 * With a `logger` option it also emits them as OpenTelemetry events (log records), the form the conventions prefer.
 *
 * It speaks only `@opentelemetry/api` (an optional peer dependency, imported by this entry point alone, never by
 * `@aviary/sdk` or the browser bundle). Without an OpenTelemetry SDK registered there is no recording span, and the
 * hook returns before building anything. It imports no runtime code from OpenFeature (types only), so the same hook
 * works with `@openfeature/server-sdk` and `@openfeature/web-sdk`, and with any provider.
 *
 *   OpenFeature.addHooks(new OpenTelemetryHook());
 */
import { context, trace, type Attributes, type Context } from '@opentelemetry/api';
// Types from @openfeature/core, which both @openfeature/server-sdk and @openfeature/web-sdk bring.
import type { BaseHook, EvaluationDetails, FlagValue, HookContext } from '@openfeature/core';

/** The event name of the semantic conventions (`EVENT_FEATURE_FLAG_EVALUATION`). */
export const FEATURE_FLAG_EVALUATION = 'feature_flag.evaluation';

/** The attribute names written (current names; `feature_flag.variant` and `feature_flag.evaluation.reason` are deprecated). */
export const FeatureFlagAttributes = {
  KEY: 'feature_flag.key',
  PROVIDER_NAME: 'feature_flag.provider.name',
  VARIANT: 'feature_flag.result.variant',
  VALUE: 'feature_flag.result.value',
  REASON: 'feature_flag.result.reason',
  CONTEXT_ID: 'feature_flag.context.id',
  SET_ID: 'feature_flag.set.id',
  VERSION: 'feature_flag.version',
  ERROR_TYPE: 'error.type',
  ERROR_MESSAGE: 'feature_flag.error.message',
} as const;

export interface OpenTelemetryHookOptions {
  /**
   * Also record `feature_flag.result.value` when the evaluation has a variant (default false: the conventions make
   * it opt-in then, as values may be large or sensitive). Without a variant (an error, the default value) the value
   * is always recorded; objects as JSON.
   */
  includeValue?: boolean;
  /** Record `feature_flag.context.id` (the targeting key; default true). */
  includeContextId?: boolean;
  /**
   * Also emit each evaluation as an OpenTelemetry event (a log record named `feature_flag.evaluation`, the form the
   * current conventions prefer) through this logger: `logs.getLogger('my-service')` from `@opentelemetry/api-logs`.
   * Emitted for every evaluation, inside a span or not, with the active context (so it correlates with the span).
   */
  logger?: EventLogger;
  /** Add the event to the active span (default true). */
  spanEvents?: boolean;
}

/** The part of an `@opentelemetry/api-logs` `Logger` the hook uses (typed here: the hook does not import api-logs). */
export interface EventLogger {
  emit(record: { eventName: string; attributes: Attributes; context?: Context }): void;
}

/** An OpenFeature hook writing `feature_flag.evaluation` span events on the active span; see the module comment. */
export class OpenTelemetryHook implements BaseHook<FlagValue, Record<string, unknown>, void, void> {
  private readonly includeValue: boolean;
  private readonly includeContextId: boolean;
  private readonly logger: EventLogger | undefined;
  private readonly spanEvents: boolean;

  constructor(options: OpenTelemetryHookOptions = {}) {
    this.includeValue = options.includeValue ?? false;
    this.includeContextId = options.includeContextId ?? true;
    this.logger = options.logger;
    this.spanEvents = options.spanEvents ?? true;
  }

  /** Runs after every evaluation, successful or not (OpenFeature's `finally` stage gets the final details). */
  finally(hookContext: Readonly<HookContext<FlagValue>>, details: EvaluationDetails<FlagValue>): void {
    const span = this.spanEvents ? trace.getActiveSpan() : undefined;
    const onSpan = span?.isRecording() ? span : undefined;
    if (onSpan === undefined && this.logger === undefined) return;
    const attributes = evaluationAttributes(hookContext, details, this.includeValue, this.includeContextId);
    onSpan?.addEvent(FEATURE_FLAG_EVALUATION, attributes);
    this.logger?.emit({ eventName: FEATURE_FLAG_EVALUATION, attributes, context: context.active() });
  }
}

/** The semantic-convention attributes of one evaluation (exported for log-record pipelines and tests). */
export function evaluationAttributes(
  hookContext: Readonly<HookContext<FlagValue>>,
  details: EvaluationDetails<FlagValue>,
  includeValue = false,
  includeContextId = true,
): Attributes {
  const A = FeatureFlagAttributes;
  const attributes: Attributes = {
    [A.KEY]: hookContext.flagKey,
    [A.PROVIDER_NAME]: hookContext.providerMetadata.name,
    // The conventions' reason values are OpenFeature's, lower-cased (`targeting_match`, `split`, `disabled`, ...).
    [A.REASON]: (details.reason ?? 'UNKNOWN').toLowerCase(),
  };
  if (details.variant !== undefined && details.variant !== '') attributes[A.VARIANT] = details.variant;
  if (includeValue || attributes[A.VARIANT] === undefined) {
    const v = details.value;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') attributes[A.VALUE] = v;
    else if (v !== null && v !== undefined) attributes[A.VALUE] = JSON.stringify(v);
  }
  const metadata = details.flagMetadata ?? {};
  const contextId = metadata.contextId ?? hookContext.context.targetingKey;
  if (includeContextId && (typeof contextId === 'string' || typeof contextId === 'number') && contextId !== '')
    attributes[A.CONTEXT_ID] = String(contextId);
  if (metadata.flagSetId !== undefined) attributes[A.SET_ID] = String(metadata.flagSetId);
  if (metadata.version !== undefined) attributes[A.VERSION] = String(metadata.version);
  if (details.reason === 'ERROR' || details.errorCode !== undefined) {
    attributes[A.ERROR_TYPE] = (details.errorCode ?? 'GENERAL').toLowerCase();
    if (details.errorMessage) attributes[A.ERROR_MESSAGE] = details.errorMessage;
  }
  return attributes;
}
