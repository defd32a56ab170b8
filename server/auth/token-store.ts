/**
 * API tokens: creation (secret shown once), SHA-256 storage, revocation, last-used time.
 *
 * Active tokens are cached in memory by the SHA-256 of their secret (never the secret itself), so authenticating a
 * request costs one SHA-256, one map lookup and no query (the SDK routes are the hot path). The cache is only changed
 * through this store, in the same process as the database.
 */
import { hash, randomBytes, randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { apiTime, apiTimeOrNull } from '../openapi/time.js';
import type { ChangeFeed } from '../storage/change-feed.js';
import type { Actor, Writer } from '../storage/writer.js';

/** A token as the API shows it (never the secret or its hash). */
export interface TokenInfo {
  id: string;
  kind: 'admin' | 'sdk';
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
}

interface TokenRow {
  id: string;
  kind: 'admin' | 'sdk';
  environment: string | null;
  name: string;
  client_side: number;
  hash: string;
  prefix: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

/**
 * An active token as cached for authentication: its row, and the info handed to callers, shared between requests
 * (read-only) so the hot path allocates nothing for it.
 */
interface ActiveToken {
  row: TokenRow;
  info: Readonly<TokenInfo>;
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
    clientSide: row.client_side === 1,
    prefix: row.prefix,
    createdAt: apiTime(row.created_at),
    lastUsedAt: apiTimeOrNull(row.last_used_at),
    revokedAt: apiTimeOrNull(row.revoked_at),
    configured: isConfigured(row.id),
  };
}

/** A fresh secret: 32 random bytes, base64url, with a readable kind prefix (`avi_admin_…`, `avi_sdk_…`). */
export function generateSecret(kind: 'admin' | 'sdk'): string {
  return `avi_${kind}_${randomBytes(32).toString('base64url')}`;
}

export class TokenStore {
  private readonly byHash = new Map<string, ActiveToken>();
  private readonly stmts;

  constructor(
    sqlite: Database.Database,
    private readonly writer: Writer,
    private readonly feed: ChangeFeed,
    private readonly now: () => number,
  ) {
    this.stmts = {
      all: sqlite.prepare<[], TokenRow>('SELECT * FROM tokens ORDER BY created_at, id'),
      one: sqlite.prepare<[string], TokenRow>('SELECT * FROM tokens WHERE id = ?'),
      insert: sqlite.prepare(
        'INSERT INTO tokens (id, kind, environment, name, client_side, hash, prefix, created_at) VALUES (@id, @kind, @environment, @name, @client_side, @hash, @prefix, @created_at)',
      ),
      upsertConfigured: sqlite.prepare(
        `INSERT INTO tokens (id, kind, environment, name, hash, prefix, created_at) VALUES (@id, @kind, @environment, @name, @hash, @prefix, @created_at)
         ON CONFLICT(id) DO UPDATE SET hash = excluded.hash, prefix = excluded.prefix, revoked_at = NULL`,
      ),
      revoke: sqlite.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      touch: sqlite.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?'),
      revokedByHash: sqlite.prepare<[string], { id: string }>('SELECT id FROM tokens WHERE hash = ? AND revoked_at IS NOT NULL LIMIT 1'),
      activeAdmins: sqlite.prepare<[], { n: number }>("SELECT count(*) AS n FROM tokens WHERE kind = 'admin' AND revoked_at IS NULL"),
    };
    this.reload();
  }

  private reload(): void {
    this.byHash.clear();
    for (const row of this.stmts.all.all()) if (row.revoked_at === null) this.cache(row);
  }

  private cache(row: TokenRow): void {
    this.byHash.set(row.hash, { row, info: toInfo(row) });
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
    return active === undefined ? null : this.used(active);
  }

  /** Records use (the last-used time, at most once a minute) and returns the token's shared info. */
  private used(active: ActiveToken): Readonly<TokenInfo> {
    const { row } = active;
    const now = this.now();
    if (row.last_used_at === null || now - row.last_used_at >= LAST_USED_GRANULARITY_MS) {
      row.last_used_at = now;
      active.info = toInfo(row);
      try {
        this.stmts.touch.run(now, row.id);
      } catch {
        // last-used time is informational; a busy database must not fail the request
      }
    }
    return active.info;
  }

  /** True when this secret belongs to a token that exists but was revoked (for a clearer 401). */
  isRevoked(secret: string): boolean {
    if (!secret || secret.length > 512) return false;
    return this.stmts.revokedByHash.get(sha256(secret).toString('hex')) !== undefined;
  }

  list(): TokenInfo[] {
    return this.stmts.all.all().map(toInfo);
  }

  get(id: string): TokenInfo | null {
    const row = this.stmts.one.get(id);
    return row ? toInfo(row) : null;
  }

  /** Creates a token and returns it with its secret (the only time the secret exists outside the caller). */
  create(
    actor: Actor,
    input: { kind: 'admin' | 'sdk'; environment: string | null; name: string; clientSide?: boolean },
  ): TokenInfo & { token: string } {
    const secret = generateSecret(input.kind);
    const row: TokenRow = {
      id: randomUUID(),
      kind: input.kind,
      environment: input.kind === 'sdk' ? input.environment : null,
      name: input.name,
      client_side: input.kind === 'sdk' && input.clientSide === true ? 1 : 0,
      hash: sha256(secret).toString('hex'),
      prefix: secret.slice(0, PREFIX_LENGTH),
      created_at: this.now(),
      last_used_at: null,
      revoked_at: null,
    };
    this.writer.write(actor, (w) => {
      row.created_at = w.now;
      this.stmts.insert.run(row);
      w.audit({ action: 'token.create', resourceType: 'token', resourceKey: row.id, environment: row.environment, after: toInfo(row) });
    });
    this.cache(row);
    return { ...toInfo(row), token: secret };
  }

  /**
   * Revokes a token. Returns the updated token, or null when it does not exist. Idempotent. Emits `token.revoked`
   * after the commit so open streams authenticated with it can close.
   */
  revoke(actor: Actor, id: string, reason?: string | null): TokenInfo | null {
    const result = this.writer.write(actor, (w) => {
      const before = this.stmts.one.get(id);
      if (!before) return null;
      if (before.revoked_at !== null) return toInfo(before);
      this.stmts.revoke.run(w.now, id);
      const after = this.stmts.one.get(id)!;
      w.audit({
        action: 'token.revoke',
        resourceType: 'token',
        resourceKey: id,
        environment: before.environment,
        before: toInfo(before),
        after: toInfo(after),
        reason: reason ?? null,
      });
      return toInfo(after);
    }).value;
    if (result) {
      for (const [hash, active] of this.byHash) if (active.row.id === id) this.byHash.delete(hash);
      this.feed.emit('token.revoked', { tokenId: id });
    }
    return result;
  }

  /** Number of active admin tokens (the API refuses to revoke the last one). */
  activeAdminCount(): number {
    return this.stmts.activeAdmins.get()!.n;
  }

  /**
   * Boot: makes `AVIARY_ADMIN_TOKEN` and `AVIARY_SDK_KEY_<ENV>` valid (stored hashed under stable ids), revokes
   * configured tokens whose variable is gone, and when no admin token is active at all, creates one and returns its
   * secret so `main.ts` can print it once.
   */
  bootstrap(config: { adminToken?: string | undefined; sdkKeys: Record<string, string>; environments: string[] }): { generatedAdminToken?: string } {
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
    this.writer.write(system, (w) => {
      for (const row of this.stmts.all.all()) {
        if (isConfigured(row.id) && !wanted.has(row.id) && row.revoked_at === null) {
          this.stmts.revoke.run(now, row.id);
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
        this.stmts.upsertConfigured.run({
          id,
          kind: t.kind,
          environment: t.environment,
          name: t.name,
          hash: sha256(t.secret).toString('hex'),
          prefix: t.secret.slice(0, 4),
          created_at: now,
        });
      }
      if (this.stmts.activeAdmins.get()!.n === 0) {
        generated = generateSecret('admin');
        const id = randomUUID();
        this.stmts.insert.run({
          id,
          kind: 'admin',
          environment: null,
          name: 'bootstrap',
          client_side: 0,
          hash: sha256(generated).toString('hex'),
          prefix: generated.slice(0, PREFIX_LENGTH),
          created_at: now,
        });
        w.audit({
          action: 'token.create',
          resourceType: 'token',
          resourceKey: id,
          after: { id, kind: 'admin', name: 'bootstrap' },
          reason: 'first boot',
        });
      }
    });
    this.reload();
    return generated ? { generatedAdminToken: generated } : {};
  }
}
