/**
 * What a relay holds in memory (issue 13): per environment in its scope, the snapshot at the newest version it
 * applied from upstream (or loaded from its disk cache), its own bounded log of recent deltas (its SDKs resume against
 * it), and the keys upstream streamed (stored hashes of the SDK keys and relay tokens that may read it). It is the
 * relay's `app.snapshots` (the stream hub, snapshot, evaluate and OFREP routes read it as they read the server's live
 * state) and its token authority (`authenticate`, `isRevoked`, OFREP tickets), so those routes are the server's own.
 *
 * Every applied delta is emitted on the relay's change feed ('change'), a snapshot replacing the state
 * ('environment.reset'), a key that no environment holds any more ('token.revoked': its streams close at once, 4003).
 */
import { hash } from 'node:crypto';
import { eventsTicketOf, ticketTokenId } from '../auth/events-ticket.js';
import type { EnvironmentSnapshot, StreamKey } from '@aviary/sdk/core';
import type { Delta } from '@aviary/sdk/protocol';
import type { TokenInfo } from '../auth/token-store.js';
import type { ChangeFeed } from '../storage/change-feed.js';
import { applyDelta, deltasSince, holdSnapshot, snapshotOf, type HeldEnvironment } from '../storage/held-environment.js';

/** Where an environment's state came from: upstream's stream, or the relay's disk cache (upstream not reached yet). */
export type SnapshotSource = 'upstream' | 'cache';

/** One environment as the disk cache stores it. */
export interface CachedEnvironment {
  snapshot: EnvironmentSnapshot;
  keys: StreamKey[];
  /** When upstream last confirmed this version (epoch ms). */
  savedAt: number;
}

interface RelayEnvironment extends HeldEnvironment {
  source: SnapshotSource;
}

interface KeyEntry {
  key: StreamKey;
  info: Readonly<TokenInfo>;
  /** Environments (in this relay's scope) whose key set holds it. */
  environments: Set<string>;
  ticket?: string;
}

export class RelayState {
  private readonly envs = new Map<string, RelayEnvironment>();
  private readonly byHash = new Map<string, KeyEntry>();
  private readonly byId = new Map<string, KeyEntry>();
  /** Hashes of keys that were deleted while this relay ran (a clearer 401 "revoked"). Bounded. */
  private readonly revokedHashes = new Set<string>();
  /** Keys whose expiry was announced (their streams closed), and the timer of the next expiry. */
  private readonly expiredIds = new Set<string>();
  private expiryTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly feed: ChangeFeed,
    /** Deltas kept per environment for its SDKs' resumes. */
    private readonly keep: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Environments held. */
  environments(): string[] {
    return [...this.envs.keys()];
  }

  has(environment: string): boolean {
    return this.envs.has(environment);
  }

  source(environment: string): SnapshotSource | null {
    return this.envs.get(environment)?.source ?? null;
  }

  get(environment: string): EnvironmentSnapshot | null {
    const e = this.envs.get(environment);
    return e ? snapshotOf(e) : null;
  }

  version(environment: string): number | null {
    return this.envs.get(environment)?.version ?? null;
  }

  keys(environment: string): StreamKey[] {
    const e = this.envs.get(environment);
    return e ? [...e.keys.values()] : [];
  }

  changesSince(environment: string, version: number): Delta[] | null {
    const e = this.envs.get(environment);
    return e ? deltasSince(e, version) : null;
  }

  /** What the disk cache writes for an environment. */
  cached(environment: string): CachedEnvironment | null {
    const snapshot = this.get(environment);
    return snapshot ? { snapshot, keys: this.keys(environment), savedAt: this.now() } : null;
  }

  /**
   * Replaces an environment with a snapshot (upstream's hydrate, or the disk cache at boot). Subscribers are
   * rehydrated ('environment.reset') when it replaced something; keys no longer held anywhere are revoked.
   */
  hydrate(snapshot: EnvironmentSnapshot, keys: StreamKey[], source: SnapshotSource): void {
    const env = snapshot.environment;
    const before = this.envs.get(env);
    this.envs.set(env, { ...holdSnapshot(snapshot, keys, []), source });
    const gone = before ? [...before.keys.keys()].filter((id) => !keys.some((k) => k.id === id)) : [];
    for (const k of keys) this.addKey(env, k);
    for (const id of gone) this.removeKey(env, id);
    if (before) this.feed.emit('environment.reset', { environment: env });
  }

  /** Upstream confirmed the relay's version without a snapshot (a resume): the state is upstream's again. */
  confirmed(environment: string): void {
    const e = this.envs.get(environment);
    if (e) e.source = 'upstream';
  }

  /** Applies the next delta; 'gap' when it does not follow (the caller resyncs). */
  apply(environment: string, delta: Delta, prev: number): 'applied' | 'old' | 'gap' {
    const e = this.envs.get(environment);
    if (!e) return 'gap';
    if (delta.version <= e.version) return 'old';
    if (prev !== e.version) return 'gap';
    const { upserted, removed } = applyDelta(e, delta, this.keep);
    for (const key of upserted) this.addKey(environment, key);
    e.source = 'upstream';
    this.feed.emit('change', { environment, delta });
    // After the delta went out: its streams close once the key is gone from every environment (a kill's latency).
    for (const id of removed) this.removeKey(environment, id);
    return 'applied';
  }

  private addKey(environment: string, key: StreamKey): void {
    let entry = this.byId.get(key.id);
    if (entry && entry.key.hash !== key.hash) {
      this.byHash.delete(entry.key.hash);
      entry = undefined;
    }
    if (!entry) {
      entry = { key, info: infoOf(key), environments: new Set() };
      this.byId.set(key.id, entry);
      this.byHash.set(key.hash, entry);
    } else if (entry.key !== key) {
      entry.key = key;
      entry.info = infoOf(key);
    }
    entry.environments.add(environment);
    this.revokedHashes.delete(key.hash);
    if (key.expiresAt !== null && !this.expiredIds.has(key.id)) this.scheduleExpiry();
  }

  private removeKey(environment: string, id: string): void {
    const entry = this.byId.get(id);
    if (!entry) return;
    entry.environments.delete(environment);
    if (entry.environments.size > 0) return;
    this.byId.delete(id);
    this.byHash.delete(entry.key.hash);
    if (this.revokedHashes.size >= 10_000) this.revokedHashes.clear();
    this.revokedHashes.add(entry.key.hash);
    this.feed.emit('token.revoked', { tokenId: id });
  }

  /** The key a secret belongs to (its SHA-256 among the streamed hashes), as the server's TokenStore answers. */
  authenticate(secret: string): Readonly<TokenInfo> | null {
    if (!secret || secret.length > 512) return null;
    const entry = this.byHash.get(hash('sha256', secret, 'hex'));
    if (!entry) return null;
    const expiresAt = entry.key.expiresAt;
    return expiresAt !== null && expiresAt <= this.now() ? null : entry.info;
  }

  /** True when the secret is a known key past its expiry (a rotated key after its overlap): a clearer 401. */
  isExpired(secret: string): boolean {
    if (!secret || secret.length > 512) return false;
    const expiresAt = this.byHash.get(hash('sha256', secret, 'hex'))?.key.expiresAt ?? null;
    return expiresAt !== null && expiresAt <= this.now();
  }

  /**
   * Closes the streams of keys as they expire, as the server does (server/auth/token-store.ts): one timer for the
   * next expiry, re-armed whenever the key set changes. An expired key is announced once.
   */
  private scheduleExpiry(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    const now = this.now();
    let next = Number.POSITIVE_INFINITY;
    for (const entry of this.byId.values()) {
      const at = entry.key.expiresAt;
      if (at === null || this.expiredIds.has(entry.key.id)) continue;
      if (at <= now) {
        this.expiredIds.add(entry.key.id);
        this.feed.emit('token.revoked', { tokenId: entry.key.id, expired: true });
      } else next = Math.min(next, at);
    }
    if (next === Number.POSITIVE_INFINITY) return;
    // setTimeout's delay is a 32-bit number of ms: a far expiry is re-checked every ~24 days.
    this.expiryTimer = setTimeout(() => this.scheduleExpiry(), Math.min(next - now, 2 ** 31 - 1));
    this.expiryTimer.unref();
  }

  /** Stops the expiry timer (the relay is closing). */
  stopExpiry(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
  }

  isRevoked(secret: string): boolean {
    if (!secret || secret.length > 512) return false;
    return this.revokedHashes.has(hash('sha256', secret, 'hex'));
  }

  /** The OFREP events ticket, computed as the server does (an HMAC keyed by the stored hash: server/auth/token-store.ts). */
  eventsTicket(tokenId: string): string | null {
    const entry = this.byId.get(tokenId);
    if (entry?.key.kind !== 'sdk') return null;
    entry.ticket ??= eventsTicketOf(tokenId, entry.key.hash);
    return entry.ticket;
  }

  authenticateTicket(ticket: string): Readonly<TokenInfo> | null {
    const tokenId = ticketTokenId(ticket, (id) => this.eventsTicket(id));
    return tokenId === null ? null : (this.byId.get(tokenId)?.info ?? null);
  }
}

function infoOf(key: StreamKey): Readonly<TokenInfo> {
  return Object.freeze({
    id: key.id,
    kind: key.kind,
    environment: key.kind === 'sdk' ? (key.environments?.[0] ?? null) : null,
    name: key.name,
    clientSide: key.clientSide,
    prefix: '',
    createdAt: '',
    lastUsedAt: null,
    revokedAt: null,
    configured: false,
    role: null,
    expiresAt: key.expiresAt === null ? null : new Date(key.expiresAt).toISOString(),
    replacedBy: null,
    environments: key.kind === 'relay' ? key.environments : null,
  });
}
