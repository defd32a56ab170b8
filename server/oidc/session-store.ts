/**
 * Console sessions of people signed in with OpenID Connect, and sign-ins in progress, both in the database so that any
 * replica can finish a sign-in another started and serve a session another created.
 *
 * The cookie holds a random secret; the `sessions` row is keyed by its SHA-256, so a leaked database holds no usable
 * session. The CSRF token is random too, handed to the browser in a readable cookie and stored only as a hash; writes
 * authenticated by the session cookie must echo it in a header (compared in constant time).
 */
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { StorePort } from '../storage/port.js';
import type { Actor, Role } from '../storage/writer.js';

/** A live session, as the auth hook and `GET /auth/session` see it. */
export interface Session {
  id: string;
  subject: string;
  email: string | null;
  name: string | null;
  role: Role;
  environments: string[] | null;
  /** SHA-256 (hex) of the CSRF token. */
  csrf: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
}

interface SessionRow {
  id: string;
  subject: string;
  email: string | null;
  name: string | null;
  role: Role;
  environments: string | null;
  csrf: string;
  created_at: number | string;
  last_seen_at: number | string;
  expires_at: number | string;
  revoked_at: number | string | null;
}

/** A sign-in in progress, between the redirect to the provider and its callback. */
export interface PendingLogin {
  state: string;
  nonce: string;
  codeVerifier: string;
  returnTo: string | null;
}

/** How long a sign-in may take at the provider before its state is forgotten. */
export const LOGIN_TTL_MS = 10 * 60_000;
/** `last_seen_at` is written at most this often per session (a read must not cost a write each time). */
const TOUCH_GRANULARITY_MS = 60_000;

const sha256hex = (s: string) => hash('sha256', s, 'hex');
export const randomSecret = () => randomBytes(32).toString('base64url');

/** True when `token` hashes to `expectedHash` (hex); constant time in the token's content. */
export function csrfMatches(token: string | undefined, expectedHash: string): boolean {
  if (typeof token !== 'string' || token === '') return false;
  const a = Buffer.from(sha256hex(token), 'hex');
  const b = Buffer.from(expectedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The actor of a session (CONTRACT §14: a person; the audit log records subject and email). */
export function sessionActor(s: Session): Actor {
  return {
    kind: 'person',
    tokenId: null,
    name: s.name ?? s.email ?? s.subject,
    subject: s.subject,
    email: s.email,
    role: s.role,
    environments: s.environments,
  };
}

export class SessionStore {
  constructor(
    private readonly store: StorePort,
    private readonly now: () => number,
    private readonly lifetimes: { idleMs: number; maxMs: number },
  ) {}

  /** Remembers a sign-in about to be sent to the provider. Also forgets expired ones and sessions long over. */
  async saveLogin(login: PendingLogin): Promise<void> {
    const now = this.now();
    await this.store.run('DELETE FROM oidc_logins WHERE created_at < ?', [now - LOGIN_TTL_MS]);
    await this.store.run('DELETE FROM sessions WHERE expires_at < ?', [now - 86_400_000]);
    await this.store.run('INSERT INTO oidc_logins (state, nonce, code_verifier, return_to, created_at) VALUES (?, ?, ?, ?, ?)', [
      login.state,
      login.nonce,
      login.codeVerifier,
      login.returnTo,
      now,
    ]);
  }

  /** Takes (and deletes: a state is good for one callback) the sign-in of `state`, or null if unknown or too old. */
  async takeLogin(state: string): Promise<PendingLogin | null> {
    // In a transaction: outside one, the SQLite adapter reads on its read-only connection.
    const row = await this.store.transaction((tx) =>
      tx.get<{ state: string; nonce: string; code_verifier: string; return_to: string | null; created_at: number | string }>(
        'DELETE FROM oidc_logins WHERE state = ? RETURNING state, nonce, code_verifier, return_to, created_at',
        [state],
      ),
    );
    if (!row || Number(row.created_at) < this.now() - LOGIN_TTL_MS) return null;
    return { state: row.state, nonce: row.nonce, codeVerifier: row.code_verifier, returnTo: row.return_to };
  }

  /** Creates a session; answers the cookie secret and the CSRF token (neither is stored). */
  async create(person: { subject: string; email: string | null; name: string | null; role: Role; environments: string[] | null }) {
    const secret = randomSecret();
    const csrf = randomSecret();
    const now = this.now();
    const expiresAt = now + this.lifetimes.maxMs;
    await this.store.run(
      `INSERT INTO sessions (id, subject, email, name, role, environments, csrf, created_at, last_seen_at, expires_at, revoked_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
      [
        sha256hex(secret),
        person.subject,
        person.email,
        person.name,
        person.role,
        person.environments === null ? null : JSON.stringify(person.environments),
        sha256hex(csrf),
        now,
        now,
        expiresAt,
      ],
    );
    return { secret, csrf, expiresAt };
  }

  /** The live session of a cookie secret, or null (unknown, revoked, idle too long, or past its absolute expiry). */
  async find(secret: string): Promise<Session | null> {
    const row = await this.store.get<SessionRow>('SELECT * FROM sessions WHERE id = ?', [sha256hex(secret)]);
    if (!row || row.revoked_at !== null) return null;
    const now = this.now();
    const lastSeenAt = Number(row.last_seen_at);
    if (now >= Number(row.expires_at) || now >= lastSeenAt + this.lifetimes.idleMs) return null;
    if (now - lastSeenAt >= TOUCH_GRANULARITY_MS) {
      await this.store.run('UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?', [now, row.id, now]);
    }
    return {
      id: row.id,
      subject: row.subject,
      email: row.email,
      name: row.name,
      role: row.role,
      environments: row.environments === null ? null : (JSON.parse(row.environments) as string[]),
      csrf: row.csrf,
      createdAt: Number(row.created_at),
      lastSeenAt: now - lastSeenAt >= TOUCH_GRANULARITY_MS ? now : lastSeenAt,
      expiresAt: Number(row.expires_at),
    };
  }

  /** Ends a session (sign-out): its cookie stops working on every replica at once. */
  async revoke(id: string): Promise<void> {
    await this.store.run('UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [this.now(), id]);
  }
}
