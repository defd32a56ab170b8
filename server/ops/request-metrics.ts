/**
 * Request count and latency per route, recorded with plain arithmetic on the hot path and rendered as ordinary
 * Prometheus counter and histogram families at scrape time.
 *
 * prom-client's own `Counter.inc` / `Histogram.observe` validate and hash the label object on every call (a labelled
 * child does too): about 3 µs per request, a few percent of an SDK evaluation. Here a request finds its series by one
 * Map lookup keyed by a string and bumps numbers; the families are objects prom-client's Registry renders like its
 * own metrics (`name`, `help`, `type`, `get()`, `reset()`).
 */
import type { Registry } from 'prom-client';

/** One sample line as prom-client's Registry renders it. */
interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** One (method, route, status) request counter. */
interface CountSeries {
  labels: { method: string; route: string; status: string };
  count: number;
}

/** One (method, route) latency histogram: non-cumulative counts per bucket (last slot: above every bound). */
interface TimeSeries {
  labels: { method: string; route: string };
  counts: number[];
  sum: number;
  count: number;
}

/** A recorder bound to one (method, route, status): `record(seconds)` on every response. */
export interface RequestSeries {
  record(seconds: number): void;
}

/** Metric family as prom-client's Registry consumes it. */
interface Family {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; aggregator: 'sum'; values: Sample[] }>;
  reset(): void;
}

/** `aviary_http_requests_total{method,route,status}` and `aviary_http_request_duration_seconds{method,route}`. */
export class RequestMetrics {
  private readonly counts = new Map<string, CountSeries>();
  private readonly times = new Map<string, TimeSeries>();
  /**
   * route → method → status → recorder. Nested maps rather than one map keyed by a joined string: the route template
   * and the method are the same string objects request after request (their hashes are cached), the status a small
   * integer, so finding a series builds, hashes and compares no new string.
   */
  private readonly recorders = new Map<string, Map<string, Map<number, RequestSeries>>>();

  constructor(
    registry: Registry,
    private readonly buckets: readonly number[],
    names = { requests: 'aviary_http_requests_total', duration: 'aviary_http_request_duration_seconds' },
  ) {
    const counts = this.counts;
    const times = this.times;
    const requests: Family = {
      name: names.requests,
      help: 'HTTP requests answered, by route template and status code.',
      type: 'counter',
      aggregator: 'sum',
      get: async () => ({
        name: names.requests,
        help: requests.help,
        type: 'counter',
        aggregator: 'sum',
        values: [...counts.values()].map((s) => ({ labels: { ...s.labels }, value: s.count })),
      }),
      reset: () => {
        for (const s of counts.values()) s.count = 0;
      },
    };
    const duration: Family = {
      name: names.duration,
      help: 'Time from receiving a request to sending the response, by route template.',
      type: 'histogram',
      aggregator: 'sum',
      get: async () => {
        const values: Sample[] = [];
        for (const s of times.values()) histogramSamples(names.duration, s.labels, buckets, s, values);
        return { name: names.duration, help: duration.help, type: 'histogram', aggregator: 'sum', values };
      },
      reset: () => {
        for (const s of times.values()) {
          s.counts.fill(0);
          s.sum = 0;
          s.count = 0;
        }
      },
    };
    registry.registerMetric(requests as never);
    registry.registerMetric(duration as never);
  }

  /** The recorder of one (method, route template, status); cached, so label values must stay few. */
  series(method: string, route: string, status: number): RequestSeries {
    let byMethod = this.recorders.get(route);
    if (byMethod === undefined) this.recorders.set(route, (byMethod = new Map()));
    let byStatus = byMethod.get(method);
    if (byStatus === undefined) byMethod.set(method, (byStatus = new Map()));
    let recorder = byStatus.get(status);
    if (recorder !== undefined) return recorder;
    const key = `${method} ${status} ${route}`;
    const statusLabel = String(status);
    let c = this.counts.get(key);
    if (c === undefined) this.counts.set(key, (c = { labels: { method, route, status: statusLabel }, count: 0 }));
    const timeKey = `${method} ${route}`;
    let t = this.times.get(timeKey);
    if (t === undefined)
      this.times.set(timeKey, (t = { labels: { method, route }, counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 }));
    const buckets = this.buckets;
    const countSeries = c;
    const timeSeries = t;
    recorder = {
      record(seconds: number): void {
        countSeries.count++;
        // Same boundary rule as Prometheus and prom-client: a value equal to a bound falls in that bucket.
        let i = 0;
        while (i < buckets.length && seconds > buckets[i]!) i++;
        timeSeries.counts[i]!++;
        timeSeries.sum += seconds;
        timeSeries.count++;
      },
    };
    byStatus.set(status, recorder);
    return recorder;
  }
}

/** Non-cumulative bucket counts (last slot: above every bound), their sum and count. */
export interface HistogramData {
  counts: readonly number[];
  sum: number;
  count: number;
}

function histogramSamples(name: string, labels: Record<string, string>, buckets: readonly number[], data: HistogramData, out: Sample[]): void {
  let cumulative = 0;
  for (let i = 0; i <= buckets.length; i++) {
    cumulative += data.counts[i] ?? 0;
    out.push({ labels: { ...labels, le: i < buckets.length ? buckets[i]! : '+Inf' }, value: cumulative, metricName: `${name}_bucket` });
  }
  out.push({ labels: { ...labels }, value: data.sum, metricName: `${name}_sum` });
  out.push({ labels: { ...labels }, value: data.count, metricName: `${name}_count` });
}

/**
 * Registers an unlabelled histogram whose data another component keeps (read at scrape time): e.g. the WAL fsync
 * durations, which the storage layer records before any registry exists.
 */
export function registerHistogram(registry: Registry, name: string, help: string, buckets: readonly number[], read: () => HistogramData): void {
  const family: Family = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get: async () => {
      const values: Sample[] = [];
      histogramSamples(name, {}, buckets, read(), values);
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
    // The data belongs to its owner; a registry reset does not rewrite it.
    reset: () => {},
  };
  registry.registerMetric(family as never);
}
