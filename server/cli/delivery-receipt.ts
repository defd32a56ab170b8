/**
 * Delivery receipts: "is it off everywhere?". After a kill the server answers with (or points to) how many connected
 * SDKs have applied the environment version that carries the change; `GET /api/v1/environments/{env}/sdks` lists each
 * SDK's last applied version. This module reads both into one shape. It is pure (no Node APIs) because the web
 * console imports it too, so the CLI and the console count the same way.
 */

/** How far one environment version has reached the connected SDKs. */
export interface DeliveryReceipt {
  /** The environment version SDKs must apply; null when the server did not say. */
  version: number | null;
  /** SDKs connected when the receipt was taken. */
  connected: number;
  /** Of those, how many have applied `version` (or a later one). */
  applied: number;
  /** Milliseconds from the change to each SDK's acknowledgement, when known, ascending. */
  latenciesMs: number[];
  /** The server's own summary of those latencies, when it sent one instead of (or besides) the list. */
  p50Ms?: number;
  maxMs?: number;
  /** Connected SDKs that have not applied it yet (ids, for the operator to chase). */
  pending: string[];
}

/** One connected SDK, as the console and CLI show it. */
export interface ConnectedSdk {
  id: string;
  app: string;
  sdkVersion: string;
  connectedAt: number | null;
  appliedVersion: number | null;
  appliedAt: number | null;
}

function obj(v: unknown): Record<string, unknown> | null {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

function num(...vs: unknown[]): number | null {
  for (const v of vs) if (typeof v === 'number' && Number.isFinite(v)) return v;
  return null;
}

function time(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}

/** Reads a list that a route may answer bare or wrapped (`{ items }`, `{ sdks }`, ...). */
export function listOf(body: unknown, ...names: string[]): unknown[] {
  if (Array.isArray(body)) return body;
  const o = obj(body);
  if (!o) return [];
  for (const n of [...names, 'items', 'data', 'results']) if (Array.isArray(o[n])) return o[n] as unknown[];
  return [];
}

/** Normalizes one entry of `GET /api/v1/environments/{env}/sdks`. */
export function toConnectedSdk(v: unknown): ConnectedSdk | null {
  const o = obj(v);
  if (!o) return null;
  const id = o.id ?? o.sdkId;
  if (typeof id !== 'string') return null;
  const app = obj(o.app);
  const appName = typeof o.app === 'string' ? o.app : app ? [app.name, app.version].filter((x) => typeof x === 'string').join(' ') : '';
  const sdk = obj(o.sdk);
  return {
    id,
    app: appName || String(o.appName ?? ''),
    sdkVersion: typeof o.sdkVersion === 'string' ? o.sdkVersion : typeof sdk?.version === 'string' ? [sdk.name, sdk.version].filter((x) => typeof x === 'string').join(' ') : '',
    connectedAt: time(o.connectedAt ?? o.connectedSince ?? o.since),
    appliedVersion: num(o.lastAppliedVersion, o.appliedVersion, o.lastVersion, o.version),
    appliedAt: time(o.lastAppliedAt ?? o.appliedAt ?? o.ackedAt),
  };
}

/**
 * Builds a receipt for `version` from the SDK list. `changedAt` (epoch ms) is when the change was acknowledged by the
 * server; latencies are measured from it with the SDKs' own ack times, so they are indicative, not exact.
 */
export function receiptFromSdks(sdks: unknown, version: number, changedAt: number): DeliveryReceipt {
  const all = listOf(sdks, 'sdks', 'connected').map(toConnectedSdk).filter((s): s is ConnectedSdk => s !== null);
  const latencies: number[] = [];
  const pending: string[] = [];
  let applied = 0;
  for (const s of all) {
    if (s.appliedVersion !== null && s.appliedVersion >= version) {
      applied++;
      if (s.appliedAt !== null) latencies.push(Math.max(0, s.appliedAt - changedAt));
    } else pending.push(s.id);
  }
  latencies.sort((a, b) => a - b);
  return { version, connected: all.length, applied, latenciesMs: latencies, pending };
}

/**
 * Reads the receipt a state-changing response carries (`receipt` or `delivery`), in whichever of the plausible shapes
 * the server uses. Returns null when the response has none, so the caller falls back to the SDK list.
 */
export function receiptFromResponse(body: unknown): DeliveryReceipt | null {
  const o = obj(body);
  if (!o) return null;
  const r = obj(o.receipt) ?? obj(o.delivery);
  if (!r) return null;
  const connected = num(r.connected, r.total, r.sdks, r.expected);
  const applied = num(r.applied, r.acked, r.acknowledged, r.confirmed);
  if (connected === null || applied === null) return null;
  const lat = Array.isArray(r.latenciesMs) ? r.latenciesMs.filter((x): x is number => typeof x === 'number').sort((a, b) => a - b) : [];
  // The spec's DeliveryReceipt summarizes: p50Ms, maxMs, and elapsedMs (commit to the last acknowledgement counted).
  const p50Ms = num(r.p50Ms);
  const maxMs = num(r.maxMs, r.elapsedMs);
  const pending = Array.isArray(r.pending) ? r.pending.filter((x): x is string => typeof x === 'string') : [];
  const state = obj(o.state);
  const version = num(r.version, r.environmentVersion, o.environmentVersion, state?.environmentVersion);
  // A receipt that says it is complete is trusted even if the counts were taken at different instants.
  return {
    version,
    connected,
    applied: r.complete === true ? Math.max(applied, connected) : applied,
    latenciesMs: lat,
    pending,
    ...(p50Ms !== null ? { p50Ms } : {}),
    ...(maxMs !== null ? { maxMs } : {}),
  };
}

/** True when every connected SDK has applied the change (vacuously true with none connected). */
export function isComplete(r: DeliveryReceipt): boolean {
  return r.applied >= r.connected;
}

/** The q-quantile (0–1) of ascending values, nearest rank; null when empty. */
export function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] ?? null;
}

/** One line for humans: "3/3 SDKs applied version 42 (p50 4 ms, max 9 ms)". */
export function describeReceipt(r: DeliveryReceipt): string {
  const v = r.version === null ? 'the change' : `version ${r.version}`;
  if (r.connected === 0) return `no SDKs connected: nothing to confirm (${v} will be served on their next connect)`;
  const p50 = r.p50Ms ?? quantile(r.latenciesMs, 0.5);
  const max = r.maxMs ?? r.latenciesMs.at(-1) ?? null;
  const single = r.applied === 1 || (r.p50Ms === undefined && r.latenciesMs.length === 1);
  const speed =
    max === null ? '' : single || p50 === null ? ` in ${Math.round(max)} ms` : ` (p50 ${Math.round(p50)} ms, max ${Math.round(max)} ms)`;
  return `${r.applied}/${r.connected} SDKs applied ${v}${speed}`;
}
