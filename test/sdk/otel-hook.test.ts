/**
 * `OpenTelemetryHook` (`@aviary/sdk/otel`) through `@openfeature/server-sdk` with the Aviary provider against the
 * real server: each evaluation becomes a `feature_flag.evaluation` event on the active span, with the semantic
 * conventions' attributes, caught by the in-memory exporter of `@opentelemetry/sdk-trace-base`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { context, trace, type Attributes } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { AlwaysOffSampler, BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { OpenFeature } from '@openfeature/server-sdk';
import { OpenFeature as WebOpenFeature } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
import { AviaryProvider } from '@aviary/sdk/openfeature';
import { FEATURE_FLAG_EVALUATION, OpenTelemetryHook } from '@aviary/sdk/otel';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { checkoutAndBanner, setState } from '../stream/fixtures.js';

let srv: TestServer | undefined;
let provider: BasicTracerProvider | undefined;
afterEach(async () => {
  OpenFeature.clearHooks();
  await OpenFeature.close();
  WebOpenFeature.clearHooks();
  await WebOpenFeature.close();
  await srv?.close();
  srv = undefined;
  await provider?.shutdown();
  provider = undefined;
  trace.disable();
  context.disable();
});

async function setup(): Promise<void> {
  srv = await startServer();
  await checkoutAndBanner(srv);
  expect((await api(srv).post('/api/v1/flags', { key: 'limits', kind: 'json', variants: [{ key: 'small', value: { max: 3 } }] })).status).toBe(201);
  await setState(srv, 'limits', 'production', { enabled: true, offVariant: 'small', targets: [], rules: [], fallthrough: { variant: 'small' } });
  await OpenFeature.setProviderAndWait(new AviaryProvider({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, flushIntervalMs: 0 }));
}

/** Registers a tracer provider exporting to memory (and the async context manager, as the Node SDK does). */
function registerTracing(options: { sampled?: boolean } = {}): InMemorySpanExporter {
  const exporter = new InMemorySpanExporter();
  provider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter)],
    ...(options.sampled === false ? { sampler: new AlwaysOffSampler() } : {}),
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  return exporter;
}

const events = (span: ReadableSpan): Attributes[] => span.events.filter((e) => e.name === FEATURE_FLAG_EVALUATION).map((e) => e.attributes ?? {});

describe('OpenTelemetryHook', () => {
  it('records each evaluation on the active span with the semantic-convention attributes', async () => {
    await setup();
    const exporter = registerTracing();
    OpenFeature.addHooks(new OpenTelemetryHook());
    const flags = OpenFeature.getClient('checkout-service');
    const tracer = trace.getTracer('test');

    await tracer.startActiveSpan('GET /checkout', async (span) => {
      expect(await flags.getBooleanValue('new-checkout', false, { targetingKey: 'vip' })).toBe(true);
      const split = await flags.getBooleanDetails('new-checkout', false, { targetingKey: 'someone' });
      expect(await flags.getStringValue('banner', 'd', { targetingKey: 'u' })).toBe('hello');
      expect(await flags.getBooleanValue('missing', true, { targetingKey: 'u' })).toBe(true);
      expect(await flags.getNumberValue('banner', 5, {})).toBe(5);
      span.end();

      const [done] = exporter.getFinishedSpans();
      const got = events(done!);
      expect(got).toEqual([
        {
          'feature_flag.key': 'new-checkout',
          'feature_flag.provider.name': 'aviary',
          'feature_flag.result.variant': 'on',
          'feature_flag.result.reason': 'targeting_match',
          'feature_flag.context.id': 'vip',
        },
        {
          'feature_flag.key': 'new-checkout',
          'feature_flag.provider.name': 'aviary',
          'feature_flag.result.variant': split.variant,
          'feature_flag.result.reason': 'split',
          'feature_flag.context.id': 'someone',
        },
        {
          'feature_flag.key': 'banner',
          'feature_flag.provider.name': 'aviary',
          'feature_flag.result.variant': 'a',
          'feature_flag.result.reason': 'default',
          'feature_flag.context.id': 'u',
        },
        // No variant: the value served (the caller's default) is recorded instead; the error is classified.
        {
          'feature_flag.key': 'missing',
          'feature_flag.provider.name': 'aviary',
          'feature_flag.result.value': true,
          'feature_flag.result.reason': 'error',
          'feature_flag.context.id': 'u',
          'error.type': 'flag_not_found',
          'feature_flag.error.message': 'FLAG_NOT_FOUND',
        },
        {
          'feature_flag.key': 'banner',
          'feature_flag.provider.name': 'aviary',
          'feature_flag.result.value': 5,
          'feature_flag.result.reason': 'error',
          'error.type': 'type_mismatch',
          'feature_flag.error.message': 'WRONG_TYPE',
        },
      ]);
      // The deprecated names are not written.
      for (const e of got) {
        expect(e).not.toHaveProperty('feature_flag.variant');
        expect(e).not.toHaveProperty('feature_flag.evaluation.reason');
      }
    });
  });

  it('records values when asked (objects as JSON), and leaves the context id out when told to', async () => {
    await setup();
    const exporter = registerTracing();
    // A client-level hook this time (OpenFeature.getClient() makes a new client each call: keep the one hooked).
    const flags = OpenFeature.getClient().addHooks(new OpenTelemetryHook({ includeValue: true, includeContextId: false }));
    const tracer = trace.getTracer('test');
    await tracer.startActiveSpan('job', async (span) => {
      expect(await flags.getObjectValue('limits', {}, { targetingKey: 'u' })).toEqual({ max: 3 });
      span.end();
    });
    expect(events(exporter.getFinishedSpans()[0]!)).toEqual([
      {
        'feature_flag.key': 'limits',
        'feature_flag.provider.name': 'aviary',
        'feature_flag.result.variant': 'small',
        'feature_flag.result.value': '{"max":3}',
        'feature_flag.result.reason': 'default',
      },
    ]);
  });

  it('records nothing outside a span, on a span that is not sampled, or without an OpenTelemetry SDK; evaluations are unchanged', async () => {
    await setup();
    OpenFeature.addHooks(new OpenTelemetryHook());
    const flags = OpenFeature.getClient();
    // No SDK registered: the API's no-op tracer; the hook finds no recording span and the evaluation is as without it.
    await trace.getTracer('test').startActiveSpan('noop', async (span) => {
      expect(span.isRecording()).toBe(false);
      expect(await flags.getBooleanDetails('new-checkout', false, { targetingKey: 'vip' })).toMatchObject({ value: true, variant: 'on' });
      span.end();
    });

    const exporter = registerTracing();
    // Outside any span: nothing to record on, nothing thrown.
    expect(await flags.getStringValue('banner', 'd', { targetingKey: 'u' })).toBe('hello');
    // A span ended before the evaluation records nothing either.
    const ended = trace.getTracer('test').startSpan('ended');
    ended.end();
    await context.with(trace.setSpan(context.active(), ended), () => flags.getStringValue('banner', 'd', { targetingKey: 'u' }));
    expect(events(exporter.getFinishedSpans()[0]!)).toEqual([]);
    await provider!.shutdown();
    trace.disable();
    context.disable();

    const unsampled = registerTracing({ sampled: false });
    await trace.getTracer('test').startActiveSpan('sampled out', async (span) => {
      expect(span.isRecording()).toBe(false);
      expect(await flags.getStringValue('banner', 'd', { targetingKey: 'u' })).toBe('hello');
      span.end();
    });
    expect(unsampled.getFinishedSpans()).toEqual([]);
  });

  it('with a logger, also emits each evaluation as a feature_flag.evaluation event (log record) tied to the active span', async () => {
    await setup();
    const exporter = registerTracing();
    const logs = new InMemoryLogRecordExporter();
    const loggers = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter: logs })] });
    const flags = OpenFeature.getClient().addHooks(new OpenTelemetryHook({ logger: loggers.getLogger('checkout-service'), spanEvents: false }));

    let spanId = '';
    await trace.getTracer('test').startActiveSpan('GET /checkout', async (span) => {
      spanId = span.spanContext().spanId;
      expect(await flags.getBooleanValue('new-checkout', false, { targetingKey: 'vip' })).toBe(true);
      span.end();
    });
    // Outside a span too: the event form does not need one.
    expect(await flags.getStringValue('banner', 'd', { targetingKey: 'u' })).toBe('hello');

    const records = logs.getFinishedLogRecords();
    expect(records.map((r) => [r.eventName, r.attributes, r.spanContext?.spanId])).toEqual([
      [
        'feature_flag.evaluation',
        {
          'feature_flag.key': 'new-checkout',
          'feature_flag.provider.name': 'aviary',
          'feature_flag.result.variant': 'on',
          'feature_flag.result.reason': 'targeting_match',
          'feature_flag.context.id': 'vip',
        },
        spanId,
      ],
      [
        'feature_flag.evaluation',
        {
          'feature_flag.key': 'banner',
          'feature_flag.provider.name': 'aviary',
          'feature_flag.result.variant': 'a',
          'feature_flag.result.reason': 'default',
          'feature_flag.context.id': 'u',
        },
        undefined,
      ],
    ]);
    // spanEvents: false: the span carries none.
    expect(events(exporter.getFinishedSpans()[0]!)).toEqual([]);
    await loggers.shutdown();
  });

  it('works the same with @openfeature/web-sdk and another provider (the published OFREP web provider)', async () => {
    srv = await startServer();
    await checkoutAndBanner(srv);
    const exporter = registerTracing();
    WebOpenFeature.addHooks(new OpenTelemetryHook());
    await WebOpenFeature.setContext({ targetingKey: 'vip' });
    const ofrep = new OFREPWebProvider({
      baseUrl: srv.url,
      headers: [['Authorization', `Bearer ${srv.sdkKeys.production}`]],
      pollInterval: 0,
      cacheMode: 'disabled',
    } as never);
    expect(ofrep.metadata.name).not.toBe('aviary');
    await WebOpenFeature.setProviderAndWait(ofrep);
    const flags = WebOpenFeature.getClient();
    trace.getTracer('test').startActiveSpan('click', (span) => {
      expect(flags.getBooleanValue('new-checkout', false)).toBe(true);
      span.end();
    });
    expect(events(exporter.getFinishedSpans()[0]!)).toEqual([
      {
        'feature_flag.key': 'new-checkout',
        'feature_flag.provider.name': ofrep.metadata.name,
        'feature_flag.result.variant': 'on',
        'feature_flag.result.reason': 'targeting_match',
        'feature_flag.context.id': 'vip',
      },
    ]);
  });
});
