/**
 * Delivers the outbox (server/webhooks/outbox.ts) on the replica that owns the `webhooks` duty. Each tick claims the
 * due pending deliveries in one fenced transaction (`UPDATE ... WHERE status = 'pending' AND next_attempt_at <= now
 * ... RETURNING`, pushing their next attempt a lease ahead), so two replicas never send the same attempt, and a
 * crash mid-send only delays it until the lease ends: delivery is at least once. Each attempt is a signed `POST`
 * (Standard Webhooks, via the `standardwebhooks` package) carrying the event id as `webhook-id` on every retry,
 * with a 10 s timeout (deliveries of a disabled webhook wait, unsent, until it is enabled again); its outcome is written (fenced) with the attempt count, status code, error and latency.
 *
 * Retry schedule (`DEFAULT_RETRY_DELAYS_MS`): after 5 s, 15 s, 40 s (the first three within a minute), 5 min, 30 min,
 * 2 h, 6 h, 8 h and 8 h: 10 attempts over about 24.6 h, then the delivery is `failed` (given up). A webhook with
 * `FAILURE_BUDGET` (5) deliveries given up in a row is disabled, with the reason; a delivered one resets the count.
 */
import { Webhook } from 'standardwebhooks';
import { LeaseLostError, type Duties } from '../cluster/duties.js';
import type { StorePort } from '../storage/port.js';
import type { DeliveryRow, EventPayload, WebhookFormat } from './webhook-store.js';
import { Ticker } from '../cluster/ticker.js';

export const DEFAULT_RETRY_DELAYS_MS = [5_000, 15_000, 40_000, 300_000, 1_800_000, 7_200_000, 21_600_000, 28_800_000, 28_800_000];
/** Consecutive deliveries given up before a webhook is disabled. */
export const FAILURE_BUDGET = 5;
export const REQUEST_TIMEOUT_MS = 10_000;
/** How long a claimed delivery is held by the replica sending it (longer than the request timeout): a crash mid-send delays it this long. */
const LEASE_MS = 15_000;
const BATCH = 20;

export interface WebhookWorkerOptions {
  store: StorePort;
  duties: Pick<Duties, 'owns' | 'fence'>;
  now: () => number;
  pollMs?: number;
  retryDelaysMs?: number[];
  timeoutMs?: number;
  log?: { error: (obj: unknown, msg: string) => void; warn: (obj: unknown, msg: string) => void };
}

/** The outcome of one attempt, to record. */
interface Outcome {
  c: Claimed;
  status: number | null;
  error: string | null;
  latency: number;
}

interface Claimed extends DeliveryRow {
  type: string;
  payload: string;
  url: string;
  secret: string;
  format: WebhookFormat;
}

/** The Slack form of an event: one line of text. */
export function slackText(p: EventPayload): string {
  const d = p.data;
  const who = d.actor?.name ?? 'someone';
  const where = d.environment ? ` in ${d.environment}` : '';
  const what: Record<string, string> = {
    'flag.killed': 'killed',
    'flag.revived': 'revived',
    'flag.state.updated': 'updated',
    'schedule.failed': 'schedule failed',
    'canary.advanced': 'canary advanced',
    'canary.rolled_back': 'canary rolled back',
    'canary.promoted': 'canary promoted',
    'canary.completed': 'canary completed',
    'change_request.created': 'change request created',
  };
  let text: string;
  if (p.type === 'environment.killed_all') text = `all flags killed${where} by ${who}`;
  else if (p.type === 'environment.revived_all') text = `all flags revived${where} by ${who}`;
  else if (p.type === 'webhook.test') text = `Aviary test event sent by ${who}`;
  else text = `${d.flag ?? ''} ${what[p.type] ?? p.type}${where} by ${who}`.trim();
  return d.reason && p.type !== 'webhook.test' ? `${text}: ${d.reason}` : text;
}

export class WebhookWorker {
  private readonly ticker = new Ticker(async () => {
    await this.tick();
    return this.pollMs;
  });
  private readonly pollMs: number;
  private readonly delays: number[];
  private readonly inFlight = new Set<Promise<void>>();
  private batch: { items: Outcome[]; done: Promise<void> } | null = null;

  constructor(private readonly o: WebhookWorkerOptions) {
    this.pollMs = o.pollMs ?? 250;
    this.delays = o.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  }

  start(): void {
    this.ticker.start();
  }

  async stop(): Promise<void> {
    await this.ticker.stop();
    await Promise.allSettled([...this.inFlight]);
  }

  /** Ticks now (or right after the tick under way): a commit created deliveries. */
  wake(): void {
    this.ticker.wake();
  }

  private async tick(): Promise<void> {
    if (!this.o.duties.owns('webhooks')) return;
    try {
      const claimed = await this.claim();
      // Sent concurrently: one slow receiver does not hold up the others' deliveries.
      for (const c of claimed) {
        const p = this.attempt(c).finally(() => this.inFlight.delete(p));
        this.inFlight.add(p);
      }
    } catch (err) {
      if (err instanceof LeaseLostError) return;
      (this.o.log ?? console).error({ err }, 'webhooks: tick failed');
    }
  }

  /** Claims the due pending deliveries (fenced): their next attempt moves a lease ahead while this replica sends them. */
  private async claim(): Promise<Claimed[]> {
    const now = this.o.now();
    return this.o.store.transaction(
      async (tx) => {
        await this.o.duties.fence(tx, 'webhooks');
        const ids = await tx.all<{ id: string }>(
          `UPDATE webhook_deliveries SET next_attempt_at = ?, updated_at = ? WHERE id IN
             (SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
               WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND w.enabled = ? ORDER BY d.next_attempt_at, d.id LIMIT ${BATCH})
             AND status = 'pending' RETURNING id`,
          [now + LEASE_MS, now, now, true],
        );
        const out: Claimed[] = [];
        for (const { id } of ids) {
          const row = await tx.get<Claimed>(
            `SELECT d.*, e.type AS type, e.payload AS payload, w.url AS url, w.secret AS secret, w.format AS format
               FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ?`,
            [id],
          );
          if (row) out.push(row);
        }
        return out;
      },
      { lock: 'write' },
    );
  }

  private async attempt(c: Claimed): Promise<void> {
    const payload = JSON.parse(c.payload) as EventPayload;
    const body = c.format === 'slack' ? JSON.stringify({ text: slackText(payload) }) : c.payload;
    const sentAt = new Date(this.o.now());
    const started = performance.now();
    let status: number | null = null;
    let error: string | null = null;
    try {
      const signature = new Webhook(c.secret).sign(c.event_id, sentAt, body);
      const res = await fetch(c.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Aviary-Webhooks',
          'webhook-id': c.event_id,
          'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
          'webhook-signature': signature,
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.o.timeoutMs ?? REQUEST_TIMEOUT_MS),
      });
      status = res.status;
      await res.body?.cancel().catch(() => {});
      if (status < 200 || status >= 300) error = `answered ${status}`;
    } catch (err) {
      error =
        err instanceof Error ? (err.name === 'TimeoutError' ? 'timed out' : String((err as { cause?: unknown }).cause ?? err.message)) : String(err);
    }
    const latency = Math.round(performance.now() - started);
    try {
      await this.recordSoon({ c, status, error, latency });
    } catch (err) {
      // Lease lost or database away: the claim expires and another attempt is made (at least once).
      if (!(err instanceof LeaseLostError)) (this.o.log ?? console).error({ err, delivery: c.id }, 'webhooks: cannot record an attempt');
    }
  }

  /**
   * Outcomes settling together (a batch sent to several receivers) are recorded in one fenced transaction: fewer
   * writes queued in front of the next kill on the single write connection.
   */
  private recordSoon(o: Outcome): Promise<void> {
    if (!this.batch) {
      const items: Outcome[] = [];
      const done = new Promise<void>((r) => setImmediate(r)).then(() => {
        this.batch = null;
        return this.record(items);
      });
      this.batch = { items, done };
    }
    this.batch.items.push(o);
    return this.batch.done;
  }

  private async record(items: Outcome[]): Promise<void> {
    const now = this.o.now();
    await this.o.store.transaction(
      async (tx) => {
        await this.o.duties.fence(tx, 'webhooks');
        for (const { c, status, error, latency } of items) {
          const attempts = Number(c.attempts) + 1;
          if (error === null) {
            await tx.run(
              `UPDATE webhook_deliveries SET status = 'delivered', attempts = ?, last_status_code = ?, last_error = NULL, last_latency_ms = ?,
               updated_at = ?, delivered_at = ? WHERE id = ? AND status = 'pending'`,
              [attempts, status, latency, now, now, c.id],
            );
            await tx.run('UPDATE webhooks SET failures = 0 WHERE id = ? AND failures <> 0', [c.webhook_id]);
            continue;
          }
          const giveUp = attempts > this.delays.length;
          await tx.run(
            `UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_status_code = ?, last_error = ?, last_latency_ms = ?,
             updated_at = ? WHERE id = ? AND status = 'pending'`,
            [giveUp ? 'failed' : 'pending', attempts, giveUp ? now : now + this.delays[attempts - 1]!, status, error, latency, now, c.id],
          );
          if (giveUp) {
            const row = await tx.get<{ failures: number }>('UPDATE webhooks SET failures = failures + 1 WHERE id = ? RETURNING failures', [
              c.webhook_id,
            ]);
            if (row && Number(row.failures) >= FAILURE_BUDGET)
              await tx.run('UPDATE webhooks SET enabled = ?, disabled_reason = ?, updated_at = ? WHERE id = ? AND enabled = ?', [
                false,
                `disabled automatically: ${FAILURE_BUDGET} deliveries in a row were given up (last: ${error})`,
                now,
                c.webhook_id,
                true,
              ]);
          }
        }
      },
      { lock: 'write' },
    );
  }
}
