/**
 * The keys relays check locally (issue 13): the stored hashes of the SDK keys of an environment and of the relay tokens
 * covering it, as `StreamKey`s. The server's live state holds them per environment (loaded with the snapshot, kept
 * current by `key.upsert` / `key.delete` changes that token writes put in the change log through the writer), and the
 * hub sends them to relay subscribers only.
 */
import type { StreamKey } from '@aviary/sdk/core';
import type { TokenRow } from '../storage/rows.js';

/** A relay token's (or scoped admin token's) environments, from its JSON column; null: all. */
export function tokenEnvironments(row: Pick<TokenRow, 'environments'>): string[] | null {
  if (row.environments === null || row.environments === undefined) return null;
  try {
    const list: unknown = JSON.parse(row.environments);
    return Array.isArray(list) ? list.filter((e): e is string => typeof e === 'string') : null;
  } catch {
    return [];
  }
}

/** Whether a token reads `environment` through the SDK API (SDK keys: their own; relay tokens: their scope). */
export function readsEnvironment(row: TokenRow, environment: string): boolean {
  if (row.kind === 'sdk') return row.environment === environment;
  if (row.kind !== 'relay') return false;
  const envs = tokenEnvironments(row);
  return envs === null || envs.includes(environment);
}

/** Whether a token is usable now (not revoked, not expired). */
export function tokenActive(row: TokenRow, now: number): boolean {
  return row.revoked_at === null && (row.expires_at === null || Number(row.expires_at) > now);
}

/** The key as relays receive it (SDK keys and relay tokens only). */
export function streamKeyOf(row: TokenRow): StreamKey | null {
  if (row.kind !== 'sdk' && row.kind !== 'relay') return null;
  return {
    id: row.id,
    kind: row.kind,
    hash: row.hash,
    name: row.name,
    clientSide: row.kind === 'sdk' && Boolean(row.client_side),
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    environments: row.kind === 'sdk' ? (row.environment === null ? [] : [row.environment]) : tokenEnvironments(row),
  };
}
