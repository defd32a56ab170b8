/**
 * OFREP change events with replicas on one PostgreSQL: the event comes from the replica that applied a change, the
 * provider's re-fetch may reach one that has not yet. The re-fetch carries the event's ETag (`flagConfigEtag`), and
 * that replica catches up before answering instead of a 304 for the version before the change. Replica B's change
 * notifications are held back (a slow LISTEN connection) and its poll is a minute, so it lags for certain.
 */
import { get, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../server/app.js';
import { openPostgres } from '../../server/storage/postgres-port.js';
import { CHANGES_CHANNEL } from '../../server/storage/writer.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { checkoutAndBanner, kill, until } from '../stream/fixtures.js';

const ADMIN = 'ofrep-events-admin-token-0123456789';
const SDK = 'ofrep-events-sdk-key-production-0123';
let db: TestDatabase;
const apps: FastifyInstance[] = [];
let a: string;
let b: string;
let appB: FastifyInstance;
let hold = false;
const held: Array<() => void> = [];

async function start(delayNotifications: boolean): Promise<[FastifyInstance, string]> {
  const store = await openPostgres(db.url);
  if (delayNotifications) {
    const listen = store.listen.bind(store);
    store.listen = (channel, onMessage, onListen) =>
      listen(
        channel,
        channel === CHANGES_CHANNEL ? (payload) => (hold ? held.push(() => onMessage(payload)) : onMessage(payload)) : onMessage,
        onListen,
      );
  }
  const app = await buildApp({ store, adminToken: ADMIN, sdkKeys: { production: SDK }, replica: { pollMs: 60_000 } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  apps.push(app);
  return [app, `http://127.0.0.1:${(app.server.address() as { port: number }).port}`];
}

beforeAll(async () => {
  db = await createTestDatabase();
  [, a] = await start(false);
  [appB, b] = await start(true);
});
afterAll(async () => {
  for (const app of apps) await app.close();
  await db?.drop();
});

const bulk = (base: string, query = '', headers: Record<string, string> = {}) =>
  fetch(`${base}/ofrep/v1/evaluate/flags${query}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${SDK}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ context: { targetingKey: 'vip' } }),
  });

it('a re-fetch after an event reaches a lagging replica: it catches up to the event’s version and answers the change', async () => {
  await checkoutAndBanner({ url: a, adminToken: ADMIN });
  const version = async (base: string) => Number((await (await bulk(base)).json()).flags[0].metadata.environmentVersion);
  const current = await version(a);
  await until(() => appB.snapshots.version('production') === current, 'replica B to follow the setup');
  const before = await bulk(b);
  const etagOnB = before.headers.get('etag')!;
  const { eventStreams } = await before.json();

  // An event stream on A (the ticket from B works on A: both check it against the shared database).
  // (node:http, not fetch: after an abort undici opens a spare connection that would hold the server's close.)
  let text = '';
  const stream = await new Promise<IncomingMessage>((resolve, reject) => get(a + eventStreams[0].endpoint.requestUri, resolve).on('error', reject));
  expect(stream.statusCode).toBe(200);
  stream.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));

  hold = true;
  await kill({ url: a, adminToken: ADMIN }, 'new-checkout');
  await until(() => text.includes('refetchEvaluation'), 'the event from A');
  const event = JSON.parse(/data: (.*)\n/.exec(text)![1]!) as { type: string; etag: string };
  expect(event.etag).toBe(`"production-${current + 1}"`);
  // B has not applied the kill: without the event's ETag it still says nothing changed.
  expect(appB.snapshots.version('production')).toBe(current);
  expect((await bulk(b, '', { 'if-none-match': etagOnB })).status).toBe(304);
  // With it (as the provider re-fetches after an event), B catches up first.
  const after = await bulk(b, `?flagConfigEtag=${encodeURIComponent(event.etag)}`, { 'if-none-match': etagOnB });
  expect(after.status).toBe(200);
  const flag = (await after.json()).flags.find((f: { key: string }) => f.key === 'new-checkout');
  expect(flag).toMatchObject({ value: false, reason: 'DISABLED' });
  stream.destroy();
  hold = false;
  for (const deliver of held.splice(0)) deliver();
});
