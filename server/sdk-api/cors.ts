/**
 * CORS for the routes an SDK key may call (`/sdk/v1/*`, `/ofrep/v1/*`). Browser apps load from their own origin and
 * call Aviary with a client-side key: the key is public, rides in the `Authorization` header (never a cookie), and
 * the answers are what that key may read anyway, so any origin may call these routes. Without it a browser refuses
 * the preflight of `POST /sdk/v1/metrics` and `POST /sdk/v1/evaluate` (their JSON content type and `Authorization`
 * header make them "non-simple"), and a web app's outcomes could never reach its canary. The admin API sends no CORS
 * headers: the console is served from the same origin.
 *
 * Register it in the context before the auth hook: @fastify/cors answers a preflight in its own `onRequest` hook,
 * which then runs first, so a preflight (which carries no key) is never refused for lacking one.
 */
import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

export async function sdkCors(app: FastifyInstance): Promise<void> {
  await app.register(cors, {
    origin: '*',
    methods: ['GET', 'POST'],
    allowedHeaders: ['authorization', 'content-type', 'if-none-match'],
    exposedHeaders: ['etag', 'retry-after'],
    maxAge: 600,
    strictPreflight: false,
  });
}
