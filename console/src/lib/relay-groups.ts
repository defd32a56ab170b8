/**
 * Groups connected SDKs by the relays they are behind (`via`: relay names from nearest the server to the SDK's own
 * relay; empty or absent for SDKs connected to the server directly), for the SDK list and the kill receipt.
 */
import type { ConnectedSdk } from '@aviary/api-client';

export interface RelayGroup {
  /** Relay names, nearest the server first; empty for direct connections. */
  path: string[];
  sdks: ConnectedSdk[];
  /** SDKs in the group that have applied `version` or later. */
  applied: number;
}

/** The relay path of an SDK (the field arrives with the relay tier; older servers do not send it). */
export function viaOf(sdk: ConnectedSdk): string[] {
  const via = (sdk as ConnectedSdk & { via?: unknown }).via;
  return Array.isArray(via) ? via.filter((v): v is string => typeof v === 'string') : [];
}

/** Groups by relay path: direct connections first, then relay paths in name order. */
export function groupByRelay(sdks: readonly ConnectedSdk[], version: number): RelayGroup[] {
  const groups = new Map<string, RelayGroup>();
  for (const s of sdks) {
    const path = viaOf(s);
    const key = path.join('\u0000');
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { path, sdks: [], applied: 0 }));
    g.sdks.push(s);
    if (s.appliedVersion !== null && s.appliedVersion >= version) g.applied++;
  }
  return [...groups.values()].sort((a, b) =>
    a.path.length === 0 ? -1 : b.path.length === 0 ? 1 : a.path.join(' → ').localeCompare(b.path.join(' → ')),
  );
}

/** "server" for direct connections, else "relay a → relay b". */
export function pathLabel(path: readonly string[]): string {
  return path.length === 0 ? 'connected directly' : `via ${path.join(' → ')}`;
}
