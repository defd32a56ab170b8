/**
 * What happens once a request has been answered: its request metrics are recorded (count and latency per route
 * template and status), a slow request is logged at `warn`, and every other one at `debug`.
 *
 * fastify calls its LogController's `requestCompleted` once for every finished request, matched or not (after any
 * onResponse hooks): that is where it writes its own "request completed" line, and a subclass is fastify's documented
 * way to change that line (Server reference, `logController`). Doing this work there instead of in a global
 * onResponse hook spares every request the onResponse hook runner: on the SDK evaluate route that was worth about a
 * tenth of its throughput (docs/operations.md). fastify's own per-request lines (incoming, completed) stay off: two
 * log lines per request cost more than the SDK route itself.
 */
import { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify';
import type { RequestMetrics } from './request-metrics.js';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** Pass as fastify's `logController`; the ops plugin attaches its request metrics to it. */
export class RequestLogController extends LogController {
  private metrics: RequestMetrics | null = null;
  private slowMs = Infinity;
  private canLog = false;

  constructor() {
    super({ disableRequestLogging: true });
  }

  /** From now on: record into `metrics`, warn about requests slower than `slowMs`, debug-log the others. */
  attach(metrics: RequestMetrics, slowMs: number, log: FastifyBaseLogger): void {
    this.metrics = metrics;
    this.slowMs = slowMs;
    // fastify's null logger (logger: false) has no isLevelEnabled.
    this.canLog = typeof (log as { isLevelEnabled?: unknown }).isLevelEnabled === 'function';
  }

  override requestCompleted(_error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const elapsed = reply.elapsedTime;
    if (this.metrics !== null) {
      const method = KNOWN_METHODS.has(request.method) ? request.method : 'OTHER';
      // The route template, never the raw URL: label values must stay few, whatever paths clients send.
      this.metrics.series(method, request.routeOptions.url ?? 'unmatched', reply.statusCode).record(elapsed / 1000);
    }
    // 5xx are logged by the error handler.
    if (elapsed >= this.slowMs) request.log.warn({ req: request, res: reply, responseTime: elapsed }, 'slow request');
    else if (this.canLog && (request.log as unknown as { isLevelEnabled(level: string): boolean }).isLevelEnabled('debug'))
      request.log.debug({ req: request, res: reply, responseTime: elapsed }, 'request completed');
  }
}
