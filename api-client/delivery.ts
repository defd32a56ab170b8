/**
 * Delivery receipts: "is it off everywhere?". A kill or revive answers with a `delivery` receipt for the environment
 * version that carries the change; `GET /api/v1/environments/{env}/sdks` lists each connected SDK's last applied
 * version. This module reads both into one `Delivery` and follows the SDK list until every SDK has applied the
 * version, so the CLI and the console count the same way. No Node APIs: the console imports it too.
 */
import type { ApiClient } from './client.js';
import { timeMs } from './time.js';
import type { ConnectedSdk, ConnectedSdkList, DeliveryReceipt } from './types.js';

/** How far one environment version has reached the connected SDKs. */
export interface Delivery {
  /** The environment version SDKs must apply. */
  version: number;
  /** SDKs connected when the receipt was taken. */
  connected: number;
  /** Of those, how many have applied `version` (or a later one). */
  applied: number;
  /** Milliseconds from the change to each SDK's acknowledgement, ascending (from the SDK list). */
  latenciesMs: number[];
  /** The server's own summary of those latencies (from a receipt). */
  p50Ms?: number;
  maxMs?: number;
  /** Connected SDKs that have not applied it yet (ids, for the operator to chase). */
  pending: string[];
}

/** "storefront 4.2.0", or '' when the SDK did not say. */
export function appLabel(s: ConnectedSdk): string {
  return s.app ? [s.app.name, s.app.version].filter((x) => x !== undefined && x !== '').join(' ') : '';
}

/** "aviary-node 0.1.0". */
export function sdkLabel(s: ConnectedSdk): string {
  return `${s.sdk.name} ${s.sdk.version}`;
}

/** The receipt a kill or revive answered with. */
export function deliveryFromReceipt(r: DeliveryReceipt): Delivery {
  return {
    version: r.version,
    connected: r.connected,
    // A receipt that says it is complete is trusted even if its counts were taken at different instants.
    applied: r.complete ? Math.max(r.applied, r.connected) : r.applied,
    latenciesMs: [],
    pending: [],
    ...(r.p50Ms !== null && r.p50Ms !== undefined ? { p50Ms: r.p50Ms } : {}),
    ...(r.maxMs !== null && r.maxMs !== undefined
      ? { maxMs: r.maxMs }
      : r.elapsedMs !== null && r.elapsedMs !== undefined
        ? { maxMs: r.elapsedMs }
        : {}),
  };
}

/**
 * A receipt for `version` from the SDK list. `changedAt` (epoch ms) is when the change was sent; latencies are
 * measured from it with the SDKs' own acknowledgement times, so they are indicative, not exact.
 */
export function deliveryFromSdks(list: ConnectedSdkList, version: number, changedAt: number): Delivery {
  const latencies: number[] = [];
  const pending: string[] = [];
  let applied = 0;
  for (const s of list.items) {
    if (s.appliedVersion !== null && s.appliedVersion >= version) {
      applied++;
      if (s.appliedAt !== null) latencies.push(Math.max(0, timeMs(s.appliedAt) - changedAt));
    } else pending.push(s.id);
  }
  latencies.sort((a, b) => a - b);
  return { version, connected: list.items.length, applied, latenciesMs: latencies, pending };
}

/** True when every connected SDK has applied the change (vacuously true with none connected). */
export function isComplete(d: Delivery): boolean {
  return d.applied >= d.connected;
}

/** The q-quantile (0–1) of ascending values, nearest rank; null when empty. */
export function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] ?? null;
}

/** One line for humans: "3/3 SDKs applied version 42 (p50 4 ms, max 9 ms)". */
export function describeDelivery(d: Delivery): string {
  const v = `version ${d.version}`;
  if (d.connected === 0) return `no SDKs connected: nothing to confirm (${v} will be served on their next connect)`;
  const p50 = d.p50Ms ?? quantile(d.latenciesMs, 0.5);
  const max = d.maxMs ?? d.latenciesMs.at(-1) ?? null;
  const single = d.applied === 1 || (d.p50Ms === undefined && d.latenciesMs.length === 1);
  const speed = max === null ? '' : single || p50 === null ? ` in ${Math.round(max)} ms` : ` (p50 ${Math.round(p50)} ms, max ${Math.round(max)} ms)`;
  return `${d.applied}/${d.connected} SDKs applied ${v}${speed}`;
}

export interface FollowOptions {
  environment: string;
  /** The environment version the change produced (`environmentVersion` of the answer). */
  version: number;
  /** When the change was sent (epoch ms), for latencies. */
  changedAt: number;
  /** The receipt the answer carried, if any: when complete, nothing is polled. */
  initial?: Delivery | null;
  /** Stop following after this long (ms). */
  timeoutMs: number;
  /** Between polls of the SDK list (ms, default 100). */
  intervalMs?: number;
  /** Called with each new reading. */
  onUpdate?: (d: Delivery) => void;
  /** Checked between polls: true stops following (a closed dialog). */
  stopped?: () => boolean;
}

/**
 * Follows the SDK list until every connected SDK has applied `version`, `timeoutMs` passes, or `stopped()`; resolves
 * to the last reading. Errors of the SDK list (the server going away) are thrown.
 */
export async function followDelivery(api: ApiClient, o: FollowOptions): Promise<Delivery> {
  let d = o.initial ?? null;
  if (d && isComplete(d)) return d;
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    const list = await api.get('/api/v1/environments/{env}/sdks', { params: { path: { env: o.environment } } });
    d = deliveryFromSdks(list, o.version, o.changedAt);
    o.onUpdate?.(d);
    if (isComplete(d) || Date.now() >= deadline || o.stopped?.()) return d;
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 100));
    if (o.stopped?.()) return d;
  }
}
