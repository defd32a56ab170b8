/**
 * The webhook outbox: called by the Writer (server/storage/writer.ts) inside every write transaction, after its audit
 * entries and version bumps, it turns the audit entries that announce an event (`eventTypeOf`) into `webhook_events`
 * rows and one pending `webhook_deliveries` row per subscribed, enabled webhook: the event commits with the change
 * it describes, or not at all. It stays cheap when there is nothing to send: no audit entry maps to an event (most
 * writes), or no webhook exists at all (an in-memory hint, refreshed every second and at once after a local webhook
 * change, so a webhook created on another replica is seen within a second). Only then is the (tiny) `webhooks` table
 * read, inside the transaction, so a subscription change is never missed by a stale cache.
 */
import { apiTime } from '../openapi/time.js';
import type { Tx } from '../storage/port.js';
import type { Actor, AuditInput } from '../storage/writer.js';
import { eventTypeOf, insertEvent, WebhookStore, type EventPayload } from './webhook-store.js';

export interface OutboxHook {
  /** Records the events of a write's audit entries; answers whether any delivery was created. */
  record(tx: Tx, now: number, actor: Actor, audits: readonly AuditInput[], versions: ReadonlyMap<string, number>): Promise<boolean>;
  /** After the commit of a write for which `record` answered true (wakes the worker). */
  committed(): void;
}

/** How often the "is there any webhook?" hint is re-read (ms): a webhook created on another replica is seen within it. */
export const HINT_REFRESH_MS = 1000;

function flagOf(e: AuditInput): string | null {
  if (e.resourceType === 'flag' || e.resourceType === 'canary') return e.resourceKey;
  const after = e.after as { flag?: unknown } | null | undefined;
  return after && typeof after.flag === 'string' ? after.flag : null;
}

export class Outbox implements OutboxHook {
  private hint = true;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: WebhookStore,
    private readonly wake: () => void,
  ) {}

  start(): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), HINT_REFRESH_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Re-reads the hint (after a local webhook change, and every second). */
  async refresh(): Promise<void> {
    // Set before the read: a webhook created now is never missed while the read is under way.
    this.hint = true;
    try {
      this.hint = await this.store.any();
    } catch {
      this.hint = true;
    }
  }

  async record(tx: Tx, now: number, actor: Actor, audits: readonly AuditInput[], versions: ReadonlyMap<string, number>): Promise<boolean> {
    if (!this.hint) return false;
    let subs: Awaited<ReturnType<typeof WebhookStore.subscriptions>> | null = null;
    let created = false;
    for (const e of audits) {
      const type = eventTypeOf(e);
      if (!type) continue;
      subs ??= await WebhookStore.subscriptions(tx);
      const environment = e.environment ?? null;
      const to = subs.filter((s) => s.events.has(type) && (s.environments === null || (environment !== null && s.environments.has(environment))));
      if (to.length === 0) continue;
      const payload: EventPayload = {
        type,
        timestamp: apiTime(now),
        data: {
          environment,
          flag: flagOf(e),
          actor: { tokenId: actor.tokenId, name: actor.name },
          reason: e.reason ?? null,
          version: environment === null ? null : (versions.get(environment) ?? null),
          before: e.before ?? null,
          after: e.after ?? null,
        },
      };
      await insertEvent(
        tx,
        now,
        payload,
        to.map((s) => s.id),
      );
      created = true;
    }
    return created;
  }

  /**
   * The worker starts on the next turn of the event loop, not in the committing request's own continuation: the
   * change's answer (a kill's, above all) goes out first, and the deliveries a few hundred microseconds later.
   */
  committed(): void {
    setImmediate(this.wake);
  }
}
