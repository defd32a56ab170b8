/** Segments (cohorts), shared by all environments: every change reaches every environment's SDKs. */
import type Database from 'better-sqlite3';
import type { Segment } from '@aviary/sdk/core';
import { problem } from '../errors.js';
import { apiTime } from '../openapi/time.js';
import { validateSegment } from './core-api.js';
import { checkPrecondition } from './flag-store.js';
import type { Actor, Writer } from './writer.js';

/** A segment as the admin API shows it. */
export interface SegmentResource extends Segment {
  description: string;
  /** Bumped on every change; the ETag is `"r<revision>"`. */
  revision: number;
  /** RFC 3339 (stored as epoch ms). */
  createdAt: string;
  updatedAt: string;
}

interface SegmentRow {
  key: string;
  description: string;
  included: string;
  excluded: string;
  rules: string;
  revision: number;
  created_at: number;
  updated_at: number;
}

const toResource = (r: SegmentRow): SegmentResource => ({
  key: r.key,
  description: r.description,
  included: JSON.parse(r.included) as string[],
  excluded: JSON.parse(r.excluded) as string[],
  rules: JSON.parse(r.rules) as Segment['rules'],
  revision: r.revision,
  createdAt: apiTime(r.created_at),
  updatedAt: apiTime(r.updated_at),
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
  private readonly stmts;

  constructor(
    sqlite: Database.Database,
    private readonly writer: Writer,
    /** Flags whose state references a segment (in any environment). */
    private readonly usage: (segmentKey: string) => { flag: string; environment: string }[],
  ) {
    this.stmts = {
      one: sqlite.prepare<[string], SegmentRow>('SELECT * FROM segments WHERE key = ?'),
      all: sqlite.prepare<[], SegmentRow>('SELECT * FROM segments ORDER BY key'),
      insert: sqlite.prepare(
        `INSERT INTO segments (key, description, included, excluded, rules, revision, created_at, updated_at)
         VALUES (@key, @description, @included, @excluded, @rules, 1, @now, @now)`,
      ),
      update: sqlite.prepare(
        `UPDATE segments SET description = @description, included = @included, excluded = @excluded, rules = @rules,
         revision = revision + 1, updated_at = @now WHERE key = @key`,
      ),
      delete: sqlite.prepare('DELETE FROM segments WHERE key = ?'),
    };
  }

  list(): SegmentResource[] {
    return this.stmts.all.all().map(toResource);
  }

  get(key: string): SegmentResource | null {
    const row = this.stmts.one.get(key);
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
    if (!v.ok) {
      const first = v.issues[0];
      throw problem('validation', first ? `${first.path || '/'}: ${first.message}` : 'invalid segment', { errors: v.issues });
    }
    if (key !== undefined && v.value.key !== key) {
      throw problem('validation', '/key: must match the key in the path', { errors: [{ path: '/key', message: 'must match the key in the path' }] });
    }
    return v.value;
  }

  /** Creates a segment; 409 when the key exists. */
  create(actor: Actor, input: unknown): SegmentResource {
    const seg = this.validate(input);
    return this.writer.write(actor, (w) => {
      if (this.stmts.one.get(seg.key)) throw problem('conflict', `Segment "${seg.key}" already exists.`);
      this.stmts.insert.run(this.params(seg, w.now));
      const created = toResource(this.stmts.one.get(seg.key)!);
      w.audit({ action: 'segment.create', resourceType: 'segment', resourceKey: seg.key, after: audited(created) });
      w.touchSegment(seg.key);
      return created;
    }).value;
  }

  /** Replaces a segment (creating it if absent). Returns the segment and whether it was created. */
  put(actor: Actor, key: string, input: unknown, ifMatch?: string[]): { segment: SegmentResource; created: boolean } {
    const seg = this.validate(input, key);
    return this.writer.write(actor, (w) => {
      const row = this.stmts.one.get(key);
      if (!row) {
        if (ifMatch !== undefined && !ifMatch.includes('*')) checkPrecondition(ifMatch, '', `Segment "${key}"`);
        this.stmts.insert.run(this.params(seg, w.now));
        const created = toResource(this.stmts.one.get(key)!);
        w.audit({ action: 'segment.create', resourceType: 'segment', resourceKey: key, after: audited(created) });
        w.touchSegment(key);
        return { segment: created, created: true };
      }
      checkPrecondition(ifMatch, `r${row.revision}`, `Segment "${key}"`);
      const before = toResource(row);
      this.stmts.update.run(this.params(seg, w.now));
      const after = toResource(this.stmts.one.get(key)!);
      w.audit({ action: 'segment.update', resourceType: 'segment', resourceKey: key, before: audited(before), after: audited(after) });
      w.touchSegment(key);
      return { segment: after, created: false };
    }).value;
  }

  /** Deletes a segment; 409 naming the flags (and environments) whose rules still use it. */
  delete(actor: Actor, key: string, ifMatch?: string[]): SegmentResource {
    return this.writer.write(actor, (w) => {
      const row = this.stmts.one.get(key);
      if (!row) throw problem('not-found', `No segment "${key}".`);
      checkPrecondition(ifMatch, `r${row.revision}`, `Segment "${key}"`);
      const users = this.usage(key);
      if (users.length) {
        const flags = [...new Set(users.map((u) => u.flag))].sort();
        throw problem(
          'in-use',
          `Segment "${key}" is used by flag${flags.length > 1 ? 's' : ''} ${flags.map((f) => `"${f}"`).join(', ')}; remove it from their rules first.`,
          {
            extensions: { flags, usages: users },
          },
        );
      }
      const before = toResource(row);
      this.stmts.delete.run(key);
      w.audit({ action: 'segment.delete', resourceType: 'segment', resourceKey: key, before: audited(before) });
      w.touchSegment(key);
      return before;
    }).value;
  }

  private params(seg: Segment, now: number) {
    return {
      key: seg.key,
      description: seg.description ?? '',
      included: JSON.stringify(seg.included),
      excluded: JSON.stringify(seg.excluded),
      rules: JSON.stringify(seg.rules),
      now,
    };
  }
}
