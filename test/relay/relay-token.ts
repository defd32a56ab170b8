/**
 * Relay tokens for the metrics-batch tests, made directly in the database (a `kind: relay` row with its hash and
 * environments) until the relay branch's `POST /api/v1/tokens { kind: 'relay' }` is merged; then the token store
 * reloads its cache so the token authenticates at once.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';

export async function createRelayTokenRow(
  app: FastifyInstance,
  environments: string[] | null,
  name = 'relay',
): Promise<{ id: string; token: string }> {
  const token = `avi_relay_${randomBytes(32).toString('base64url')}`;
  const id = randomUUID();
  await app.store.run(
    'INSERT INTO tokens (id, kind, environment, name, client_side, hash, prefix, created_at, environments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    [
      id,
      'relay',
      null,
      name,
      false,
      createHash('sha256').update(token).digest('hex'),
      token.slice(0, 12),
      Date.now(),
      environments ? JSON.stringify(environments) : null,
    ],
  );
  await app.stores.tokens.refresh();
  return { id, token };
}
