/**
 * `POST /sdk/v1/metrics` at a relay (issue 13): the report is validated as the server validates it (the OpenAPI
 * schema, `reportProblems`, then each row screened against the relay's snapshot of the key's environment), then
 * handed to a `MetricsSink`. The sink answers only once the report is safe upstream; the SDK retries a failure with
 * the same `(sdkId, seq)`, which upstream counts once.
 *
 * `UpstreamPassThroughSink` posts each report upstream with the relay token (`?environment=`), so upstream counts it
 * under the relay token and the SDK's own `(sdkId, seq)`: exactly once per report while the relay is up. It cannot
 * carry a client-side key's attribution (a relay token is server-side evidence), so client-side keys' reports are
 * refused with 503 rather than counted as something they are not; the aggregating forwarder (relayflow) replaces it.
 */
import type { FastifyInstance } from 'fastify';
import type { MetricsReport } from '@aviary/sdk/protocol';
import type { SdkPrincipal } from '../auth/authenticate.js';
import { problem, validationError } from '../errors.js';
import { FlagCatalog } from '../metrics/flag-catalog.js';
import { DEFAULT_REPORT_LIMITS, reportProblems, screenReport } from '../metrics/report-validation.js';
import type { RouteOf } from '../openapi/route-types.js';
import { routeSchema } from '../openapi/validation.js';

/** Where a relay puts the metric reports its SDKs send. */
export interface MetricsSink {
  /** Resolves once the report is safe (counted upstream, or durably queued); rejects with a problem otherwise. */
  accept(principal: SdkPrincipal, report: MetricsReport): Promise<MetricsAccepted>;
}

/** What the SDK is answered once its report is safe (the server's `MetricsAccepted` shape). */
export interface MetricsAccepted {
  accepted: boolean;
  duplicate?: boolean;
}

/** Forwards each report upstream and answers with upstream's answer (see the file comment for its limits). */
export class UpstreamPassThroughSink implements MetricsSink {
  constructor(
    private readonly upstream: string,
    private readonly token: string,
    private readonly timeoutMs = 10_000,
  ) {}

  async accept(principal: SdkPrincipal, report: MetricsReport): Promise<MetricsAccepted> {
    if (principal.clientSide) {
      throw problem(
        'unavailable',
        'metrics forwarding not configured: this relay cannot attribute client-side keys’ reports upstream; send them to the server directly.',
      );
    }
    let res: Response;
    try {
      res = await fetch(`${this.upstream}/sdk/v1/metrics?environment=${encodeURIComponent(principal.environment)}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(report),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch {
      throw problem('unavailable', 'Upstream is unreachable; retry the report (it will be counted once).');
    }
    const body: unknown = await res.json().catch(() => null);
    if (res.ok) {
      const b = body as Partial<MetricsAccepted> | null;
      return { accepted: b?.accepted === true, ...(b?.duplicate === true ? { duplicate: true } : {}) };
    }
    if (res.status >= 500 || res.status === 429)
      throw problem(res.status === 429 ? 'too-many-requests' : 'unavailable', `Upstream answered ${res.status}; retry the report.`);
    const detail = (body as { detail?: unknown } | null)?.detail;
    throw problem('validation', `Upstream refused the report: ${typeof detail === 'string' ? detail : res.status}`);
  }
}

/** The relay's `POST /metrics` (under the SDK prefix, after the SDK auth hook). */
export async function relayMetricsRoute(app: FastifyInstance, options: { sink: MetricsSink }): Promise<void> {
  const catalog = new FlagCatalog(app.snapshots);
  app.post<RouteOf<'sdkMetrics'>>('/metrics', { bodyLimit: 16 * 1024 * 1024, schema: routeSchema('sdkMetrics') }, async (request, reply) => {
    const sdk = request.sdk!;
    const report = request.body as MetricsReport;
    const issues = reportProblems(report);
    if (issues.length > 0) throw validationError(issues);
    const screened = screenReport(report, catalog.get(sdk.environment), app.now(), DEFAULT_REPORT_LIMITS, sdk.clientSide);
    if (screened.kept.length === 0 && screened.dropped > 0) {
      const first = screened.issues[0]!;
      throw problem('validation', `No row of this report can be counted (${screened.dropped} dropped); first: ${first.path}: ${first.message}`, {
        errors: screened.issues.map(({ path, message }) => ({ path, message })),
      });
    }
    try {
      const answer = await options.sink.accept(sdk, screened.dropped > 0 ? { ...report, stats: screened.kept } : report);
      return { ...answer };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 503 || (err as { statusCode?: number }).statusCode === 429)
        reply.header('retry-after', '1');
      throw err;
    }
  });
}
