/**
 * CORS for the routes an SDK key may call (`/sdk/v1/*`, `/ofrep/v1/*`). Browser apps load from their own origin and
 * call Aviary with a client-side key: the key is public, rides in the `Authorization` header (never a cookie), and
 * the answers are what that key may read anyway, so any origin may call these routes. Without it a browser refuses
 * the preflight of `POST /sdk/v1/metrics` and `POST /sdk/v1/evaluate` (their JSON content type and `Authorization`
 * header make them "non-simple"), and a web app's outcomes could never reach its canary. The admin API sends no CORS
 * headers: the console is served from the same origin.
 *
 * Two fastify mechanisms, in the context before its auth hook: an `onRequest` hook that answers a browser's preflight
 * (which carries no key) and adds the two response headers to any request with an `Origin` (a browser's), and an
 * `OPTIONS` route so that preflights reach that context. This is all of CORS that a fixed `*` policy without credentials needs. @fastify/cors does the same and
 * more, but it resolves its options per request (an object spread and closures): about 0.8 µs on every SDK request,
 * 3% of the evaluate route (bench:server --cpu-prof), paid by server-side SDKs that never send an `Origin`.
 */
import type { FastifyInstance } from 'fastify';

const PREFLIGHT_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, POST',
  'access-control-allow-headers': 'authorization, content-type, if-none-match',
  'access-control-max-age': '600',
  'content-length': '0',
};

export async function sdkCors(app: FastifyInstance): Promise<void> {
  // Added before the context's auth hook, so it runs first: a preflight (which carries no key) ends here.
  app.addHook('onRequest', (request, reply, done) => {
    if (request.headers.origin === undefined) return done();
    if (request.method === 'OPTIONS') {
      reply.code(204).headers(PREFLIGHT_HEADERS).send();
      return;
    }
    reply.header('access-control-allow-origin', '*');
    reply.header('access-control-expose-headers', 'etag, retry-after');
    done();
  });
  // So that fastify routes a preflight into this context (and its hook) rather than to the not-found handler.
  app.options('/*', (_request, reply) => {
    reply.code(204).headers(PREFLIGHT_HEADERS).send();
  });
}
