/**
 * Wires outbound webhooks into an app: decorates `app.webhooks` (store, outbox, worker), installs the outbox in the
 * writer (events recorded in the transaction of their change), and starts the worker when the server is ready (it
 * delivers only while this replica owns the `webhooks` duty) and stops it before close.
 */
import type { FastifyInstance } from 'fastify';
import { Outbox } from './outbox.js';
import { WebhookStore } from './webhook-store.js';
import { WebhookWorker } from './webhook-worker.js';

/** Webhook options of buildApp. */
export interface WebhookOptions {
  /** How often the worker polls for due deliveries (ms). Default 250. */
  pollMs?: number;
  /** Delays before each retry (ms); the delivery is given up after the last. Default: webhook-worker.ts. */
  retryDelaysMs?: number[];
  /** Per-request timeout (ms). Default 10,000. */
  timeoutMs?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    webhooks: { store: WebhookStore; outbox: Outbox; worker: WebhookWorker };
  }
}

/** Needs `app.store`, `app.writer`, `app.duties`, `app.now`. Call before registering routes. */
export function setupWebhooks(app: FastifyInstance, options: WebhookOptions = {}): void {
  const worker = new WebhookWorker({
    store: app.store,
    duties: app.duties,
    now: app.now,
    log: app.log,
    ...(options.pollMs ? { pollMs: options.pollMs } : {}),
    ...(options.retryDelaysMs ? { retryDelaysMs: options.retryDelaysMs } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });
  let outbox: Outbox | null = null;
  const store = new WebhookStore(app.store, app.now, () => void outbox?.refresh());
  outbox = new Outbox(store, () => worker.wake());
  app.writer.setOutbox(outbox);
  app.decorate('webhooks', { store, outbox, worker });
  const o = outbox;
  app.addHook('onReady', async () => {
    o.start();
    worker.start();
  });
  app.addHook('preClose', async () => {
    o.stop();
    await worker.stop();
  });
}
