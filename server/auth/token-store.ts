/**
 * API tokens: creation (secret shown once), SHA-256 storage, revocation, last-used time.
 *
 * Active tokens are cached in memory by the SHA-256 of their secret (never the secret itself), so authenticating a
 * request costs one SHA-256, one map lookup and no query (the SDK routes are the hot path). This replica's own
 * changes update the cache at once; on PostgreSQL, other replicas' changes arrive by NOTIFY on `aviary_tokens` (sent in
 * the writing transaction) and by a slow poll, and `refresh()` reloads the cache and closes the
 * streams of tokens revoked elsewhere.
 */
import { hash, randomBytes, randomUUID } from 'node:crypto';
import { eventsTicketOf, ticketTokenId } from './events-ticket.js';
import { apiTime, apiTimeOrNull } from '../openapi/time.js';
import type { ChangeFeed } from '../storage/change-feed.js';
import { bool, type SqlValue, type StorePort, type Subscription } from '../storage/port.js';
import type { TokenRow } from '../storage/rows.js';
import type { Actor, Role, Writer } from '../storage/writer.js';
import { tokenEnvironments } from './stream-keys.js';

/** A token as the API shows it (never the secret or its hash). */
export interface TokenInfo {
  id: string;
  kind: 'admin' | 'sdk' | 'relay';
  /** SDK tokens only: the one environment they read. */
  environment: string | null;
  name: string;
  /**
   * SDK keys only: a client-side key (public, shipped in browser and mobile apps); false for server-side keys (secret)
   * and admin tokens. Its metrics can never decide a canary by itself (CONTRACT §16).
   */
  clientSide: boolean;
  /** The first characters of the secret, to tell tokens apart. */
  prefix: string;
  /** RFC 3339, like every time the API answers (stored as epoch ms). */
  createdAt: string;
  /** Updated at most once a minute per token. */
  lastUsedAt: string | null;
  revokedAt: string | null;
  /** Set by `AVIARY_ADMIN_TOKEN` / `AVIARY_SDK_KEY_<ENV>`: managed by configuration, not the API. */
  configured: boolean;
  /** Admin tokens: their role (CONTRACT §14; rows made before roles are `admin`); null for other kinds. */
  role: Role | null;
  /** Admin (editor/oncall) and relay tokens: the environments they may change or read; null: all. */
  environments: string[] | null;
  /** When the token stops working (RFC 3339); null: never. Rotation sets it on the replaced token. */
  expiresAt: string | null;
  /** The token that replaced this one by rotation. */
  replacedBy: string | null;
}

/**
 * An active token as cached for authentication: its row, and the info handed to callers, shared between requests
 * (read-only) so the hot path allocates nothing for it.
 */
interface ActiveToken {
  row: TokenRow;
  info: Readonly<TokenInfo>;
  /** The OFREP events ticket (SDK keys), computed once (it is asked for on every OFREP bulk evaluation). */
  ticket?: string;
}

/** Ids of tokens that come from the process environment; stable so audit entries stay attributable. */
export const CONFIGURED_ADMIN_ID = 'configured-admin';
export const configuredSdkId = (environment: string) => `configured-sdk-${environment}`;
const isConfigured = (id: string) => id === CONFIGURED_ADMIN_ID || id.startsWith('configured-sdk-');

const LAST_USED_GRANULARITY_MS = 60_000;
const PREFIX_LENGTH = 12;

function sha256(secret: string): Buffer {
  // One-shot hash: no Hash object per request (this runs on every SDK request).
  return hash('sha256', secret, 'buffer');
}

function toInfo(row: TokenRow): TokenInfo {
  return {
    id: row.id,
    kind: row.kind,
    environment: row.environment,
    name: row.name,
    clientSide: bool(row.client_side),
    prefix: row.prefix,
    createdAt: apiTime(Number(row.created_at)),
    lastUsedAt: apiTimeOrNull(row.last_used_at === null ? null : Number(row.last_used_at)),
    revokedAt: apiTimeOrNull(row.revoked_at === null ? null : Number(row.revoked_at)),
    configured: isConfigured(row.id),
    role: row.kind === 'admin' ? ((row.role as Role | null) ?? 'admin') : null,
    environments: tokenEnvironments(row),
    expiresAt: apiTimeOrNull(row.expires_at === null ? null : Number(row.expires_at)),
    replacedBy: row.replaced_by,
  };
}

/** True when a token row has expired at `now` (epoch ms). */
function expired(row: TokenRow, now: number): boolean {
  return row.expires_at !== null && Number(row.expires_at) <= now;
}

/** Values for `SQL.insertFull`. */
function insertValues(row: TokenRow): SqlValue[] {
  return [
    row.id,
    row.kind,
    row.environment,
    row.name,
    row.client_side,
    row.hash,
    row.prefix,
    row.created_at,
    row.role,
    row.environments,
    row.expires_at,
  ];
}

/** A fresh secret: 32 random bytes, base64url, with a readable kind prefix (`avi_admin_…`, `avi_sdk_…`). */
export function generateSecret(kind: 'admin' | 'sdk' | 'relay'): string {
  return `avi_${kind}_${randomBytes(32).toString('base64url')}`;
}

/** The channel on which token changes are announced to the other replicas. */
export const TOKENS_CHANNEL = 'aviary_tokens';

const SQL = {
  all: 'SELECT * FROM tokens ORDER BY created_at, id',
  one: 'SELECT * FROM tokens WHERE id = ?',
  insert: `INSERT INTO tokens (id, kind, environment, name, client_side, hash, prefix, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  insertFull: `INSERT INTO tokens (id, kind, environment, name, client_side, hash, prefix, created_at, role, environments, expires_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  replace: 'UPDATE tokens SET expires_at = ?, replaced_by = ? WHERE id = ? AND revoked_at IS NULL AND replaced_by IS NULL',
  relayEnvironments: 'UPDATE tokens SET environments = ? WHERE id = ?',
  upsertConfigured: `INSERT INTO tokens (id, kind, environment, name, hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT(id) DO UPDATE SET hash = excluded.hash, prefix = excluded.prefix, revoked_at = NULL`,
  revoke: 'UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL',
  touch: 'UPDATE tokens SET last_used_at = ? WHERE id = ?',
  // Tokens that can administer (role admin; null is admin), not revoked, not expired.
  activeAdmins: `SELECT count(*) AS n FROM tokens WHERE kind = 'admin' AND (role IS NULL OR role = 'admin') AND revoked_at IS NULL
    AND (expires_at IS NULL OR expires_at > ?)`,
};

export class TokenStore {
  private readonly byHash = new Map<string, ActiveToken>();
  /** The same active tokens by id (OFREP events tickets name the token). */
  private readonly byId = new Map<string, ActiveToken>();
  /** Hashes of revoked tokens (for a clearer 401 without a query). */
  private readonly revokedHashes = new Set<string>();
  /** Hashes of expired tokens (for a clearer 401), and the timer that expires the next one (see `scheduleExpiry`). */
  private readonly expiredHashes = new Set<string>();
  private expiryTimer: NodeJS.Timeout | null = null;
  private subscription: Subscription | null = null;
  private poll: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: StorePort,
    private readonly writer: Writer,
    private readonly feed: ChangeFeed,
    private readonly now: () => number,
  ) {}

  /**
   * Reloads the cache from the database; tokens that were active here and are revoked now (by another replica) get
   * `token.revoked`, so their streams close.
   */
  async refresh(): Promise<void> {
    const rows = await this.store.all<TokenRow>(SQL.all);
    const activeBefore = new Set([...this.byHash.values()].map((a) => a.row.id));
    this.byHash.clear();
    this.byId.clear();
    this.revokedHashes.clear();
    this.expiredHashes.clear();
    const revokedNow: string[] = [];
    const now = this.now();
    for (const row of rows) {
      if (row.revoked_at === null && !expired(row, now)) this.cache(row);
      else {
        (row.revoked_at === null ? this.expiredHashes : this.revokedHashes).add(row.hash);
        if (activeBefore.has(row.id)) revokedNow.push(row.id);
      }
    }
    for (const tokenId of revokedNow) this.feed.emit('token.revoked', { tokenId });
    this.scheduleExpiry();
  }

  /**
   * Expiry: every replica keeps its own timer for the next expiry among the tokens it caches (their `expires_at` is
   * in the shared database, and rotation announces itself on the tokens channel), so no replica needs another's
   * word. When it fires, expired tokens leave the cache and get `token.revoked`, which closes their SDK streams
   * (4003) and OFREP event streams here. `authenticate` also checks the time, so a late timer lets nothing through.
   */
  private scheduleExpiry(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    let next = Number.POSITIVE_INFINITY;
    for (const active of this.byId.values()) if (active.row.expires_at !== null) next = Math.min(next, Number(active.row.expires_at));
    if (next === Number.POSITIVE_INFINITY) return;
    // setTimeout holds at most 2^31-1 ms; a far expiry re-arms on the way.
    const delay = Math.min(Math.max(0, next - this.now()), 86_400_000);
    this.expiryTimer = setTimeout(() => this.expireDue(), delay);
    this.expiryTimer.unref();
  }

  private expireDue(): void {
    const now = this.now();
    const due: string[] = [];
    for (const [h, active] of this.byHash) {
      if (!expired(active.row, now)) continue;
      this.byHash.delete(h);
      this.byId.delete(active.row.id);
      this.expiredHashes.add(h);
      due.push(active.row.id);
    }
    for (const tokenId of due) this.feed.emit('token.revoked', { tokenId, expired: true });
    this.scheduleExpiry();
  }

  /**
   * Follows other replicas' token changes (PostgreSQL): on each notification, after every (re-)LISTEN, and on a slow
   * poll every `pollMs` (a lost notification must not keep a revoked token alive here for long). Stopped by `close()`.
   */
  async follow(pollMs: number): Promise<void> {
    if (this.store.dialect !== 'postgres') return;
    const refresh = () => void this.refresh().catch(() => {});
    this.subscription = await this.store.listen(TOKENS_CHANNEL, refresh, refresh);
    this.poll = setInterval(refresh, pollMs);
    this.poll.unref();
  }

  /** Stops following (app close). */
  async close(): Promise<void> {
    if (this.poll) clearInterval(this.poll);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    await this.subscription?.unlisten().catch(() => {});
  }

  private cache(row: TokenRow): void {
    const active: ActiveToken = { row, info: toInfo(row) };
    this.byHash.set(row.hash, active);
    this.byId.set(row.id, active);
  }

  /**
   * Finds the active token for a presented secret. The map is keyed by the SHA-256 of secrets, not by secrets: how long
   * a lookup takes depends on digests only, which reveal nothing usable about any stored secret, and a hit means the
   * digests are equal (there is nothing left to compare).
   */
  authenticate(secret: string): Readonly<TokenInfo> | null {
    if (!secret || secret.length > 512) return null;
    // Hex straight from the one-shot hash (no Hash object, no Buffer): this runs on every SDK request.
    const active = this.byHash.get(hash('sha256', secret, 'hex'));
    if (active === undefined) return null;
    if (active.row.expires_at !== null && Number(active.row.expires_at) <= this.now()) {
      this.expireDue();
      return null;
    }
    return this.used(active);
  }

  /** Records use (the last-used time, at most once a minute, in the background) and returns the token's shared info. */
  private used(active: ActiveToken): Readonly<TokenInfo> {
    const { row } = active;
    const now = this.now();
    if (row.last_used_at === null || now - Number(row.last_used_at) >= LAST_USED_GRANULARITY_MS) {
      row.last_used_at = now;
      active.info = toInfo(row);
      // Informational: a busy or unreachable database must not fail (or slow) the request.
      this.store.run(SQL.touch, [now, row.id]).catch(() => {});
    }
    return active.info;
  }

  /**
   * The OFREP change-events ticket of an active SDK key (server/ofrep/ofrep-events.ts): `<token id>.<HMAC-SHA256 of a
   * fixed label, keyed by the key's stored hash>`. A browser's EventSource cannot send headers, so the event-stream URL
   * carries this instead of the key: it opens that stream and nothing else, every replica can check it (the hash is in
   * the shared database), and it dies with the key. Null for an unknown, revoked or non-SDK token.
   */
  eventsTicket(tokenId: string): string | null {
    const active = this.byId.get(tokenId);
    if (active === undefined || active.row.kind !== 'sdk') return null;
    active.ticket ??= eventsTicketOf(tokenId, active.row.hash);
    return active.ticket;
  }

  /** The active SDK key a ticket from `eventsTicket` belongs to, or null (unknown, forged, or revoked since). */
  authenticateTicket(ticket: string): Readonly<TokenInfo> | null {
    const tokenId = ticketTokenId(ticket, (id) => this.eventsTicket(id));
    const active = tokenId === null ? undefined : this.byId.get(tokenId);
    if (active === undefined || expired(active.row, this.now())) return null;
    return this.used(active);
  }

  /** True when this secret belongs to a token that exists but was revoked (for a clearer 401). */
  isRevoked(secret: string): boolean {
    if (!secret || secret.length > 512) return false;
    return this.revokedHashes.has(sha256(secret).toString('hex'));
  }

  /** True when this secret belongs to a token that expired (or was rotated and its overlap ended). */
  isExpired(secret: string): boolean {
    if (!secret || secret.length > 512) return false;
    const h = sha256(secret).toString('hex');
    if (this.expiredHashes.has(h)) return true;
    const active = this.byHash.get(h);
    return active !== undefined && expired(active.row, this.now());
  }

  async list(): Promise<TokenInfo[]> {
    return (await this.store.all<TokenRow>(SQL.all)).map(toInfo);
  }

  async get(id: string): Promise<TokenInfo | null> {
    const row = await this.store.get<TokenRow>(SQL.one, [id]);
    return row ? toInfo(row) : null;
  }

  /** Creates a token and returns it with its secret (the only time the secret exists outside the caller). */
  async create(
    actor: Actor,
    input: {
      kind: 'admin' | 'sdk' | 'relay';
      environment: string | null;
      name: string;
      clientSide?: boolean;
      role?: Role | null;
      environments?: readonly string[] | null;
      expiresAt?: number | null;
    },
  ): Promise<TokenInfo & { token: string }> {
    const secret = generateSecret(input.kind);
    const row: TokenRow = {
      id: randomUUID(),
      kind: input.kind,
      environment: input.kind === 'sdk' ? input.environment : null,
      name: input.name,
      client_side: input.kind === 'sdk' && input.clientSide === true,
      hash: sha256(secret).toString('hex'),
      prefix: secret.slice(0, PREFIX_LENGTH),
      created_at: this.now(),
      last_used_at: null,
      revoked_at: null,
      role: input.kind === 'admin' ? (input.role ?? null) : null,
      environments: input.environments ? JSON.stringify(input.environments) : null,
      expires_at: input.expiresAt ?? null,
      replaced_by: null,
    };
    await this.writer.write(actor, async (w) => {
      row.created_at = w.now;
      await w.tx.run(SQL.insertFull, insertValues(row));
      // relay (issue 13): SDK keys and relay tokens reach relays as key changes.
      w.touchToken(row.id);
      w.audit({ action: 'token.create', resourceType: 'token', resourceKey: row.id, environment: row.environment, after: toInfo(row) });
      await w.tx.notify(TOKENS_CHANNEL, row.id);
    });
    this.cache(row);
    this.scheduleExpiry();
    return { ...toInfo(row), token: secret };
  }

  /**
   * Rotation: a new token like `id` (kind, name, environment, client side, role, environments) with a new secret, and
   * the old one expiring `overlapMs` from now (or sooner, if it was to expire sooner), with `replaced_by` set. One
   * transaction, audited as `token.rotate` on the old token and `token.create` on the new one. Null when `id` does
   * not exist; `{ conflict }` when it cannot be rotated.
   */
  async rotate(
    actor: Actor,
    id: string,
    options: { overlapMs: number; expiresAt?: number | null },
  ): Promise<(TokenInfo & { token: string }) | null | { conflict: string }> {
    const { value } = await this.writer.write(
      actor,
      async (w): Promise<null | { conflict: string } | { secret: string; row: TokenRow; old: TokenRow }> => {
        const old = await w.tx.get<TokenRow>(SQL.one, [id]);
        if (!old) return null;
        if (isConfigured(old.id))
          return { conflict: `Token "${old.name}" comes from the server's environment variables; change the variable and restart.` };
        if (old.revoked_at !== null) return { conflict: `Token "${old.name}" is revoked.` };
        if (expired(old, w.now)) return { conflict: `Token "${old.name}" has expired.` };
        if (old.replaced_by !== null) return { conflict: `Token "${old.name}" was already rotated (replaced by ${old.replaced_by}).` };
        const secret = generateSecret(old.kind);
        const row: TokenRow = {
          ...old,
          id: randomUUID(),
          hash: sha256(secret).toString('hex'),
          prefix: secret.slice(0, PREFIX_LENGTH),
          created_at: w.now,
          last_used_at: null,
          revoked_at: null,
          expires_at: options.expiresAt ?? null,
          replaced_by: null,
        };
        await w.tx.run(SQL.insertFull, insertValues(row));
        const until = old.expires_at === null ? w.now + options.overlapMs : Math.min(Number(old.expires_at), w.now + options.overlapMs);
        await w.tx.run(SQL.replace, [until, row.id, old.id]);
        // relay (issue 13): relays learn the new key and the old one's expiry as key changes.
        w.touchToken(row.id);
        w.touchToken(old.id);
        const after = (await w.tx.get<TokenRow>(SQL.one, [old.id]))!;
        w.audit({
          action: 'token.rotate',
          resourceType: 'token',
          resourceKey: old.id,
          environment: old.environment,
          before: toInfo(old),
          after: toInfo(after),
          reason: `replaced by ${row.id}; the old secret works until ${apiTime(until)}`,
        });
        w.audit({ action: 'token.create', resourceType: 'token', resourceKey: row.id, environment: row.environment, after: toInfo(row) });
        await w.tx.notify(TOKENS_CHANNEL, row.id);
        return { secret, row, old: after };
      },
    );
    if (value === null || 'conflict' in value) return value;
    // This replica's cache at once (the others hear of it by NOTIFY): the new token, and the old one with its expiry.
    this.cache(value.row);
    const active = this.byId.get(id);
    if (active) {
      active.row = value.old;
      active.info = toInfo(value.old);
    }
    this.expireDue();
    return { ...toInfo(value.row), token: value.secret };
  }

  /**
   * Revokes a token. Returns the updated token, or null when it does not exist. Idempotent. Emits `token.revoked`
   * after the commit so open streams authenticated with it can close (other replicas hear of it by NOTIFY).
   */
  async revoke(actor: Actor, id: string, reason?: string | null): Promise<TokenInfo | null> {
    const { value: result } = await this.writer.write(actor, async (w) => {
      const before = await w.tx.get<TokenRow>(SQL.one, [id]);
      if (!before) return null;
      if (before.revoked_at !== null) return toInfo(before);
      await w.tx.run(SQL.revoke, [w.now, id]);
      w.touchToken(id);
      const after = (await w.tx.get<TokenRow>(SQL.one, [id]))!;
      w.audit({
        action: 'token.revoke',
        resourceType: 'token',
        resourceKey: id,
        environment: before.environment,
        before: toInfo(before),
        after: toInfo(after),
        reason: reason ?? null,
      });
      await w.tx.notify(TOKENS_CHANNEL, id);
      return toInfo(after);
    });
    if (result) {
      for (const [hash, active] of this.byHash) {
        if (active.row.id === id) {
          this.byHash.delete(hash);
          this.byId.delete(id);
          this.revokedHashes.add(hash);
        }
      }
      this.feed.emit('token.revoked', { tokenId: id });
    }
    return result;
  }

  /** Number of active admin tokens (the API refuses to revoke the last one). */
  async activeAdminCount(): Promise<number> {
    const row = await this.store.get<{ n: number }>(SQL.activeAdmins, [this.now()]);
    return Number(row?.n ?? 0);
  }

  /**
   * Boot: makes `AVIARY_ADMIN_TOKEN` and `AVIARY_SDK_KEY_<ENV>` valid (stored hashed under stable ids), revokes
   * configured tokens whose variable is gone, and when no admin token is active at all, creates one and returns its
   * secret so `main.ts` can print it once. Replicas booting together are serialized by the write lock: only one of
   * them can find no admin token.
   */
  async bootstrap(config: {
    adminToken?: string | undefined;
    sdkKeys: Record<string, string>;
    environments: string[];
  }): Promise<{ generatedAdminToken?: string }> {
    const system: Actor = { tokenId: null, name: 'system' };
    const now = this.now();
    const wanted = new Map<string, { kind: 'admin' | 'sdk'; environment: string | null; name: string; secret: string }>();
    if (config.adminToken)
      wanted.set(CONFIGURED_ADMIN_ID, { kind: 'admin', environment: null, name: 'AVIARY_ADMIN_TOKEN', secret: config.adminToken });
    for (const [env, secret] of Object.entries(config.sdkKeys)) {
      if (!config.environments.includes(env)) throw new Error(`AVIARY_SDK_KEY_${env.toUpperCase().replaceAll('-', '_')}: no environment "${env}"`);
      wanted.set(configuredSdkId(env), { kind: 'sdk', environment: env, name: `AVIARY_SDK_KEY_${env.toUpperCase().replaceAll('-', '_')}`, secret });
    }
    let generated: string | undefined;
    await this.writer.write(system, async (w) => {
      for (const row of await w.tx.all<TokenRow>(SQL.all)) {
        if (isConfigured(row.id) && !wanted.has(row.id) && row.revoked_at === null) {
          await w.tx.run(SQL.revoke, [now, row.id]);
          w.touchToken(row.id);
          w.audit({
            action: 'token.revoke',
            resourceType: 'token',
            resourceKey: row.id,
            environment: row.environment,
            reason: 'variable no longer set at boot',
          });
        }
      }
      for (const [id, t] of wanted) {
        // Relays learn a configured SDK key that is new or changed (a key change, versioned like any other).
        const before = await w.tx.get<TokenRow>(SQL.one, [id]);
        if (t.kind === 'sdk' && (!before || before.revoked_at !== null || before.hash !== sha256(t.secret).toString('hex'))) w.touchToken(id);
        await w.tx.run(SQL.upsertConfigured, [id, t.kind, t.environment, t.name, sha256(t.secret).toString('hex'), t.secret.slice(0, 4), now]);
      }
      const admins = await w.tx.get<{ n: number }>(SQL.activeAdmins, [now]);
      if (Number(admins?.n ?? 0) === 0) {
        generated = generateSecret('admin');
        const id = randomUUID();
        await w.tx.run(SQL.insert, [
          id,
          'admin',
          null,
          'bootstrap',
          false,
          sha256(generated).toString('hex'),
          generated.slice(0, PREFIX_LENGTH),
          now,
        ]);
        w.audit({
          action: 'token.create',
          resourceType: 'token',
          resourceKey: id,
          after: { id, kind: 'admin', name: 'bootstrap' },
          reason: 'first boot',
        });
      }
      await w.tx.notify(TOKENS_CHANNEL, 'bootstrap');
    });
    await this.refresh();
    return generated ? { generatedAdminToken: generated } : {};
  }
}
