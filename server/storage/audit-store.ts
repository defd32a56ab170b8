/** Reading the audit log: filters and cursor pagination (newest first). Writing happens in the Writer only. */
import type { JsonValue } from '@aviary/sdk/core';
import { apiTime } from '../openapi/time.js';
import type { StorePort } from './port.js';
import type { AuditRow } from './rows.js';
import type { ActorKind } from './writer.js';

/** One audit entry as the API shows it. */
export interface AuditEntry {
  id: number;
  /** RFC 3339 (stored as epoch ms). */
  at: string;
  actor: AuditActor;
  action: string;
  resourceType: string;
  resourceKey: string;
  environment: string | null;
  before: JsonValue | null;
  after: JsonValue | null;
  reason: string | null;
}

/**
 * Who made an audited change (CONTRACT §14): a token (id and name), a person signed in with OpenID Connect (subject
 * and email), or the schedule runner, a trigger, the canary guard or the system. Rows written before these columns
 * existed read as `token` when they name a token, else `system`.
 */
export interface AuditActor {
  tokenId: string | null;
  name: string;
  kind: ActorKind;
  subject: string | null;
  email: string | null;
}

/** Filters of the audit listing. */
export interface AuditFilter {
  /** Entries about this flag (definition and states). */
  flag?: string;
  resourceType?: string;
  resourceKey?: string;
  environment?: string;
  action?: string;
  /** Resource keys containing this text, ignoring case. */
  search?: string;
  /** Inclusive lower bound, epoch ms. */
  from?: number;
  /** Exclusive upper bound, epoch ms. */
  to?: number;
  /** Entries older than this cursor (from a previous page's `nextCursor`). */
  cursor?: number;
  limit?: number;
}

export const encodeCursor = (id: number) => Buffer.from(`a${id}`).toString('base64url');
export function decodeCursor(cursor: string): number | null {
  const m = /^a(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return m?.[1] ? Number(m[1]) : null;
}

export class AuditStore {
  constructor(private readonly store: StorePort) {}

  /** A page of entries, newest first, and the cursor of the next page (null on the last page). */
  async list(filter: AuditFilter = {}): Promise<{ entries: AuditEntry[]; nextCursor: string | null }> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.flag !== undefined) {
      where.push("resource_type = 'flag' AND resource_key = ?");
      params.push(filter.flag);
    }
    if (filter.search !== undefined) {
      // A plain substring: LIKE's wildcards in the text are escaped, and case is ignored on both engines.
      where.push("lower(resource_key) LIKE ? ESCAPE '\\'");
      params.push(`%${filter.search.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    }
    if (filter.resourceType !== undefined) {
      where.push('resource_type = ?');
      params.push(filter.resourceType);
    }
    if (filter.resourceKey !== undefined) {
      where.push('resource_key = ?');
      params.push(filter.resourceKey);
    }
    if (filter.environment !== undefined) {
      where.push('environment = ?');
      params.push(filter.environment);
    }
    if (filter.action !== undefined) {
      where.push('action = ?');
      params.push(filter.action);
    }
    if (filter.from !== undefined) {
      where.push('at >= ?');
      params.push(filter.from);
    }
    if (filter.to !== undefined) {
      where.push('at < ?');
      params.push(filter.to);
    }
    if (filter.cursor !== undefined) {
      where.push('id < ?');
      params.push(filter.cursor);
    }
    const limit = Math.min(Math.max(filter.limit ?? 50, 1), 500);
    const rows = await this.store.all<AuditRow>(
      `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ${limit + 1}`,
      params,
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      entries: page.map((r) => ({
        id: Number(r.id),
        at: apiTime(Number(r.at)),
        actor: {
          tokenId: r.actor_token_id,
          name: r.actor_name,
          kind: (r.actor_kind as ActorKind | null) ?? (r.actor_token_id !== null ? 'token' : 'system'),
          subject: r.actor_subject,
          email: r.actor_email,
        },
        action: r.action,
        resourceType: r.resource_type,
        resourceKey: r.resource_key,
        environment: r.environment,
        before: r.before === null ? null : (JSON.parse(r.before) as JsonValue),
        after: r.after === null ? null : (JSON.parse(r.after) as JsonValue),
        reason: r.reason,
      })),
      nextCursor: rows.length > limit && last ? encodeCursor(Number(last.id)) : null,
    };
  }
}
