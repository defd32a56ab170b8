/** Segments (cohorts), shared by all environments: every change reaches every environment's SDKs. */
import type { Segment } from '@aviary/sdk/core';
import { apiTime } from '../openapi/time.js';
import { validateSegment } from './core-api.js';
import type { Sql, StorePort } from './port.js';
import type { Precondition } from './preconditions.js';
import type { SegmentRow } from './rows.js';
import { conflict, invalid, notFound, StoreError } from './store-errors.js';
import type { Actor, WriteContext, Writer } from './writer.js';

/** A segment as the admin API shows it. */
export interface SegmentResource extends Segment {
  description: string;
  /** Bumped on every change; the ETag is `"r<revision>"`. */
  revision: number;
  /** RFC 3339 (stored as epoch ms). */
  createdAt: string;
  updatedAt: string;
}

const SQL = {
  one: 'SELECT * FROM segments WHERE key = ?',
  all: 'SELECT * FROM segments ORDER BY key',
  insert: `INSERT INTO segments (key, description, included, excluded, rules, revision, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, 1, ?, ?)`,
  update: `UPDATE segments SET description = ?, included = ?, excluded = ?, rules = ?, revision = revision + 1, updated_at = ?
    WHERE key = ?`,
  delete: 'DELETE FROM segments WHERE key = ?',
};

const toResource = (r: SegmentRow): SegmentResource => ({
  key: r.key,
  description: r.description,
  included: JSON.parse(r.included) as string[],
  excluded: JSON.parse(r.excluded) as string[],
  rules: JSON.parse(r.rules) as Segment['rules'],
  revision: Number(r.revision),
  createdAt: apiTime(Number(r.created_at)),
  updatedAt: apiTime(Number(r.updated_at)),
});

const audited = (s: SegmentResource) => ({
  key: s.key,
  description: s.description,
  included: s.included,
  excluded: s.excluded,
  rules: s.rules,
  revision: s.revision,
});

/** Members of a segment body that are read-only (ignored when a client echoes a GET back). */
const READ_ONLY = ['revision', 'createdAt', 'updatedAt'];

export class SegmentStore {
  constructor(
    private readonly store: StorePort,
    private readonly writer: Writer,
    private readonly usage: (segmentKey: string, sql: Sql) => Promise<{ flag: string; environment: string }[]>,
  ) {}

  async list(): Promise<SegmentResource[]> {
    return (await this.store.all<SegmentRow>(SQL.all)).map(toResource);
  }

  async get(key: string): Promise<SegmentResource | null> {
    const row = await this.store.get<SegmentRow>(SQL.one, [key]);
    return row ? toResource(row) : null;
  }

  private validate(input: unknown, key?: string): Segment {
    let body = input;
    if (typeof input === 'object' && input !== null && !Array.isArray(input)) {
      const copy: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(input)) if (!READ_ONLY.includes(k)) copy[k] = v;
      if (key !== undefined && copy.key === undefined) copy.key = key;
      body = copy;
    }
    const v = validateSegment(body);
    if (!v.ok) throw invalid(v.issues);
    if (key !== undefined && v.value.key !== key) {
      throw invalid([{ path: '/key', message: 'must match the key in the path' }]);
    }
    return v.value;
  }

  /** Creates a segment; 409 when the key exists. */
  async create(actor: Actor, input: unknown): Promise<SegmentResource> {
    const seg = this.validate(input);
    const { value } = await this.writer.write(actor, async (w) => {
      if (await w.tx.get(SQL.one, [seg.key])) throw conflict(`Segment "${seg.key}" already exists.`);
      await w.tx.run(SQL.insert, insertParams(seg, w.now));
      const created = toResource((await w.tx.get<SegmentRow>(SQL.one, [seg.key]))!);
      w.audit({ action: 'segment.create', resourceType: 'segment', resourceKey: seg.key, after: audited(created) });
      w.touchSegment(seg.key);
      return created;
    });
    return value;
  }

  /** Replaces a segment (creating it if absent). Returns the segment and whether it was created. */
  async put(actor: Actor, key: string, input: unknown, precondition?: Precondition): Promise<{ segment: SegmentResource; created: boolean }> {
    const seg = this.validate(input, key);
    const { value } = await this.writer.write(actor, (w) => this.putIn(w, key, seg, precondition));
    return value;
  }

  /** Validates a segment body as `put` does (read-only members ignored, `key` must match); throws `invalid`. */
  validateInput(key: string, input: unknown): Segment {
    return this.validate(input, key);
  }

  /** `put` of a validated segment inside an existing write (flags as code: apply-service.ts). */
  async putIn(w: WriteContext, key: string, seg: Segment, precondition?: Precondition): Promise<{ segment: SegmentResource; created: boolean }> {
    {
      const row = await w.tx.get<SegmentRow>(SQL.one, [key]);
      if (!row) {
        precondition?.(null);
        await w.tx.run(SQL.insert, insertParams(seg, w.now));
        const created = toResource((await w.tx.get<SegmentRow>(SQL.one, [key]))!);
        w.audit({ action: 'segment.create', resourceType: 'segment', resourceKey: key, after: audited(created) });
        w.touchSegment(key);
        return { segment: created, created: true };
      }
      precondition?.(Number(row.revision));
      const before = toResource(row);
      await w.tx.run(SQL.update, [
        seg.description ?? '',
        JSON.stringify(seg.included),
        JSON.stringify(seg.excluded),
        JSON.stringify(seg.rules),
        w.now,
        key,
      ]);
      const after = toResource((await w.tx.get<SegmentRow>(SQL.one, [key]))!);
      w.audit({ action: 'segment.update', resourceType: 'segment', resourceKey: key, before: audited(before), after: audited(after) });
      w.touchSegment(key);
      return { segment: after, created: false };
    }
  }

  /** Deletes a segment; 409 naming the flags (and environments) whose rules still use it. */
  async delete(actor: Actor, key: string, precondition?: Precondition): Promise<SegmentResource> {
    const { value } = await this.writer.write(actor, (w) => this.deleteIn(w, key, precondition));
    return value;
  }

  /** `delete` inside an existing write (flags as code: apply-service.ts). */
  async deleteIn(w: WriteContext, key: string, precondition?: Precondition): Promise<SegmentResource> {
    {
      const row = await w.tx.get<SegmentRow>(SQL.one, [key]);
      if (!row) throw notFound(`No segment "${key}".`);
      precondition?.(Number(row.revision));
      const users = await this.usage(key, w.tx);
      if (users.length) {
        const flags = [...new Set(users.map((u) => u.flag))].sort();
        throw new StoreError(
          'in-use',
          `Segment "${key}" is used by flag${flags.length > 1 ? 's' : ''} ${flags.map((f) => `"${f}"`).join(', ')}; remove it from their rules first.`,
          [],
          { flags, usages: users },
        );
      }
      const before = toResource(row);
      await w.tx.run(SQL.delete, [key]);
      w.audit({ action: 'segment.delete', resourceType: 'segment', resourceKey: key, before: audited(before) });
      w.touchSegment(key);
      return before;
    }
  }
}

function insertParams(seg: Segment, now: number) {
  return [seg.key, seg.description ?? '', JSON.stringify(seg.included), JSON.stringify(seg.excluded), JSON.stringify(seg.rules), now, now];
}
