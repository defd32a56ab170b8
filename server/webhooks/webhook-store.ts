/**
 * Outbound webhooks (CONTRACT §13): the `webhooks` table (what to send where), the outbox (`webhook_events`, one row
 * per event, written by `Outbox.record` in the transaction of the change it describes) and `webhook_deliveries` (one
 * row per event per webhook: the delivery log and the retry state the worker drives, server/webhooks/webhook-worker.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { JsonValue } from '@aviary/sdk/core';
import { apiTime, apiTimeOrNull } from '../openapi/time.js';
import { bool, type Sql, type StorePort, type Tx } from '../storage/port.js';
import { conflict, invalid, notFound } from '../storage/store-errors.js';
import type { Actor, AuditInput } from '../storage/writer.js';

/** Event types a webhook may subscribe to (CONTRACT §13). */
export const WEBHOOK_EVENT_TYPES = [
  'flag.killed',
  'flag.revived',
  'flag.state.updated',
  'environment.killed_all',
  'environment.revived_all',
  'canary.advanced',
  'canary.rolled_back',
  'canary.promoted',
  'canary.completed',
  'change_request.created',
  'schedule.failed',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** The type of the event `POST /webhooks/{id}/test` sends (to that webhook only, subscribed or not). */
export const TEST_EVENT_TYPE = 'webhook.test';

/** Audit action (and the resource type it must be about) → event type. The writer's audit entries are the source. */
const EVENT_OF_AUDIT: Record<string, { resourceType: string; type: WebhookEventType }> = {
  'flag.kill': { resourceType: 'flag', type: 'flag.killed' },
  'flag.revive': { resourceType: 'flag', type: 'flag.revived' },
  'flag-state.update': { resourceType: 'flag', type: 'flag.state.updated' },
  'flag-state.revert': { resourceType: 'flag', type: 'flag.state.updated' },
  'environment.kill-all': { resourceType: 'environment', type: 'environment.killed_all' },
  'environment.revive-all': { resourceType: 'environment', type: 'environment.revived_all' },
  'canary.advance': { resourceType: 'canary', type: 'canary.advanced' },
  'canary.rollback': { resourceType: 'canary', type: 'canary.rolled_back' },
  'canary.promote': { resourceType: 'canary', type: 'canary.promoted' },
  'canary.complete': { resourceType: 'canary', type: 'canary.completed' },
  'change-request.create': { resourceType: 'change-request', type: 'change_request.created' },
  'schedule.fail': { resourceType: 'flag', type: 'schedule.failed' },
};

/** The event type an audit entry announces, or null. */
export function eventTypeOf(entry: AuditInput): WebhookEventType | null {
  const m = EVENT_OF_AUDIT[entry.action];
  return m && m.resourceType === entry.resourceType ? m.type : null;
}

export type WebhookFormat = 'standard' | 'slack';

interface WebhookRow {
  id: string;
  name: string;
  url: string;
  events: string;
  environments: string | null;
  secret: string;
  format: WebhookFormat;
  enabled: number | boolean;
  disabled_reason: string | null;
  failures: number;
  created_at: number;
  updated_at: number;
}

export interface DeliveryRow {
  id: string;
  webhook_id: string;
  event_id: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_attempt_at: number;
  last_status_code: number | null;
  last_error: string | null;
  last_latency_ms: number | null;
  created_at: number;
  updated_at: number;
  delivered_at: number | null;
}

export interface WebhookResource {
  id: string;
  name: string;
  url: string;
  events: string[];
  environments: string[] | null;
  format: WebhookFormat;
  enabled: boolean;
  disabledReason: string | null;
  failures: number;
  createdAt: string;
  updatedAt: string;
}

export interface DeliveryResource {
  id: string;
  webhookId: string;
  eventId: string;
  type: string;
  status: DeliveryRow['status'];
  attempts: number;
  nextAttemptAt: string;
  lastStatusCode: number | null;
  lastError: string | null;
  lastLatencyMs: number | null;
  createdAt: string;
  updatedAt: string;
  deliveredAt: string | null;
  payload: JsonValue;
}

export interface WebhookInput {
  url: string;
  events: string[];
  environments?: string[] | null;
  name?: string;
  format?: WebhookFormat;
}

export interface WebhookPatch {
  url?: string;
  events?: string[];
  environments?: string[] | null;
  name?: string;
  format?: WebhookFormat;
  enabled?: boolean;
}

/** The event body as sent: `{ type, timestamp, data }`. */
export interface EventPayload {
  type: string;
  timestamp: string;
  data: {
    environment: string | null;
    flag: string | null;
    actor: { tokenId: string | null; name: string };
    reason: string | null;
    version: number | null;
    before: unknown;
    after: unknown;
    [more: string]: unknown;
  };
}

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function resourceOf(r: WebhookRow): WebhookResource {
  return {
    id: r.id,
    name: r.name,
    url: r.url,
    events: JSON.parse(r.events) as string[],
    environments: r.environments === null ? null : (JSON.parse(r.environments) as string[]),
    format: r.format,
    enabled: bool(r.enabled),
    disabledReason: r.disabled_reason,
    failures: num(r.failures),
    createdAt: apiTime(num(r.created_at)),
    updatedAt: apiTime(num(r.updated_at)),
  };
}

function deliveryOf(r: DeliveryRow & { type: string; payload: string }): DeliveryResource {
  return {
    id: r.id,
    webhookId: r.webhook_id,
    eventId: r.event_id,
    type: r.type,
    status: r.status,
    attempts: num(r.attempts),
    nextAttemptAt: apiTime(num(r.next_attempt_at)),
    lastStatusCode: numOrNull(r.last_status_code),
    lastError: r.last_error,
    lastLatencyMs: numOrNull(r.last_latency_ms),
    createdAt: apiTime(num(r.created_at)),
    updatedAt: apiTime(num(r.updated_at)),
    deliveredAt: apiTimeOrNull(numOrNull(r.delivered_at)),
    payload: JSON.parse(r.payload) as JsonValue,
  };
}

/** `whsec_` + base64 of 32 random bytes (the Standard Webhooks secret format). */
export function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

function checkUrl(url: string, path = '/url'): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid([{ path, message: 'is not a URL' }]);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw invalid([{ path, message: 'must be an http or https URL' }]);
}

function checkEvents(events: string[]): void {
  events.forEach((e, i) => {
    if (!(WEBHOOK_EVENT_TYPES as readonly string[]).includes(e))
      throw invalid([{ path: `/events/${i}`, message: `is not a known event type ("${e}")` }]);
  });
}

const SQL = {
  get: 'SELECT * FROM webhooks WHERE id = ?',
  list: 'SELECT * FROM webhooks ORDER BY created_at, id',
  insert: `INSERT INTO webhooks (id, name, url, events, environments, secret, format, enabled, disabled_reason, failures, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?, ?)`,
  enabledSubs: 'SELECT id, events, environments FROM webhooks WHERE enabled = ?',
  any: 'SELECT id FROM webhooks LIMIT 1',
  insertEvent: 'INSERT INTO webhook_events (id, type, environment, flag, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)',
  insertDelivery: `INSERT INTO webhook_deliveries (id, webhook_id, event_id, status, attempts, next_attempt_at, created_at, updated_at)
    VALUES (?, ?, ?, 'pending', 0, ?, ?, ?)`,
  deliveries: `SELECT d.*, e.type AS type, e.payload AS payload FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
    WHERE d.webhook_id = ? ORDER BY d.created_at DESC, d.id DESC LIMIT 100`,
  delivery: `SELECT d.*, e.type AS type, e.payload AS payload FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE d.id = ?`,
};

export class WebhookStore {
  constructor(
    private readonly store: StorePort,
    private readonly now: () => number,
    /** Called after a commit that changed the webhooks (the outbox's "any webhook at all?" hint). */
    private readonly changed: () => void = () => {},
  ) {}

  async list(): Promise<WebhookResource[]> {
    return (await this.store.all<WebhookRow>(SQL.list)).map(resourceOf);
  }

  async get(id: string): Promise<WebhookResource> {
    const row = await this.store.get<WebhookRow>(SQL.get, [id]);
    if (!row) throw notFound(`No webhook "${id}".`);
    return resourceOf(row);
  }

  /** Creates a webhook; answers it with its secret (the only time the secret is shown). */
  async create(input: WebhookInput): Promise<WebhookResource & { secret: string }> {
    checkUrl(input.url);
    checkEvents(input.events);
    const id = randomUUID();
    const secret = newSecret();
    const now = this.now();
    const name = input.name ?? new URL(input.url).host;
    await this.store.transaction(async (tx) => {
      await tx.run(SQL.insert, [
        id,
        name,
        input.url,
        JSON.stringify(input.events),
        input.environments ? JSON.stringify(input.environments) : null,
        secret,
        input.format ?? 'standard',
        true,
        now,
        now,
      ]);
    });
    this.changed();
    return { ...(await this.get(id)), secret };
  }

  /** Changes a webhook. Re-enabling clears its failure count and disabled reason; disabling records "disabled by an operator". */
  async update(id: string, patch: WebhookPatch): Promise<WebhookResource> {
    if (patch.url !== undefined) checkUrl(patch.url);
    if (patch.events !== undefined) checkEvents(patch.events);
    await this.store.transaction(async (tx) => {
      const row = await tx.get<WebhookRow>(SQL.get, [id]);
      if (!row) throw notFound(`No webhook "${id}".`);
      const sets: string[] = [];
      const params: (string | number | boolean | null)[] = [];
      const set = (col: string, v: string | number | boolean | null) => {
        sets.push(`${col} = ?`);
        params.push(v);
      };
      if (patch.name !== undefined) set('name', patch.name);
      if (patch.url !== undefined) set('url', patch.url);
      if (patch.events !== undefined) set('events', JSON.stringify(patch.events));
      if (patch.environments !== undefined) set('environments', patch.environments === null ? null : JSON.stringify(patch.environments));
      if (patch.format !== undefined) set('format', patch.format);
      if (patch.enabled === true && !bool(row.enabled)) {
        set('enabled', true);
        set('disabled_reason', null);
        set('failures', 0);
      } else if (patch.enabled === false && bool(row.enabled)) {
        set('enabled', false);
        set('disabled_reason', 'disabled by an operator');
      }
      set('updated_at', this.now());
      await tx.run(`UPDATE webhooks SET ${sets.join(', ')} WHERE id = ?`, [...params, id]);
    });
    this.changed();
    return this.get(id);
  }

  async delete(id: string): Promise<void> {
    const n = await this.store.transaction(async (tx) => {
      await tx.run('DELETE FROM webhook_deliveries WHERE webhook_id = ?', [id]);
      return tx.run('DELETE FROM webhooks WHERE id = ?', [id]);
    });
    if (n === 0) throw notFound(`No webhook "${id}".`);
    this.changed();
  }

  async deliveries(id: string): Promise<DeliveryResource[]> {
    await this.get(id);
    return (await this.store.all<DeliveryRow & { type: string; payload: string }>(SQL.deliveries, [id])).map(deliveryOf);
  }

  async delivery(id: string): Promise<DeliveryResource | null> {
    const row = await this.store.get<DeliveryRow & { type: string; payload: string }>(SQL.delivery, [id]);
    return row ? deliveryOf(row) : null;
  }

  /** Queues a `webhook.test` event to this webhook only (subscribed or not). A disabled webhook receives nothing: 409. */
  async test(id: string, actor: Actor): Promise<DeliveryResource> {
    if (!(await this.get(id)).enabled) throw conflict(`Webhook "${id}" is disabled: enable it to send a test event.`);
    const now = this.now();
    const deliveryId = await this.store.transaction(async (tx) => {
      const payload: EventPayload = {
        type: TEST_EVENT_TYPE,
        timestamp: apiTime(now),
        data: {
          environment: null,
          flag: null,
          actor: { tokenId: actor.tokenId, name: actor.name },
          reason: 'a test event',
          version: null,
          before: null,
          after: null,
        },
      };
      return insertEvent(tx, now, payload, [id]);
    });
    return (await this.delivery(deliveryId))!;
  }

  /** Whether any webhook exists (the outbox's cheap "nothing to do" check). */
  async any(sql: Sql = this.store): Promise<boolean> {
    return (await sql.get(SQL.any)) !== undefined;
  }

  /** The enabled webhooks' subscriptions, read inside the writing transaction. */
  static async subscriptions(tx: Tx): Promise<{ id: string; events: Set<string>; environments: Set<string> | null }[]> {
    return (await tx.all<{ id: string; events: string; environments: string | null }>(SQL.enabledSubs, [true])).map((r) => ({
      id: r.id,
      events: new Set(JSON.parse(r.events) as string[]),
      environments: r.environments === null ? null : new Set(JSON.parse(r.environments) as string[]),
    }));
  }
}

/** Inserts one outbox event and a pending delivery (due now) per webhook; answers the last delivery's id. */
let deliverySeq = 0;

/**
 * A delivery id that sorts in creation order within this process, also for deliveries made in the same millisecond
 * (the delivery log lists newest first by `created_at`, then id): the time, a counter, then randomness.
 */
function deliveryId(now: number): string {
  deliverySeq = (deliverySeq + 1) % 36 ** 4;
  return `${now.toString(36).padStart(9, '0')}-${deliverySeq.toString(36).padStart(4, '0')}-${randomUUID()}`;
}

export async function insertEvent(tx: Tx, now: number, payload: EventPayload, webhookIds: string[]): Promise<string> {
  const eventId = `msg_${randomUUID()}`;
  await tx.run(SQL.insertEvent, [eventId, payload.type, payload.data.environment, payload.data.flag, JSON.stringify(payload), now]);
  let last = '';
  for (const webhookId of webhookIds) {
    last = deliveryId(now);
    await tx.run(SQL.insertDelivery, [last, webhookId, eventId, now, now, now]);
  }
  return last;
}
