/**
 * Serves the web console (`console/dist`, built by `npm run build`) at `/`, with a fallback to `index.html` for the
 * console's own client-side routes. The API's prefixes are never answered with the page: an unknown `/api/...` path
 * must stay a problem+json 404 for scripts, not 200 HTML.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** Options of the console plugin. */
export interface ConsolePluginOptions {
  /** The built console (default: `console/dist` at the repository root). */
  root?: string;
}

/** Paths owned by the API and operations routes; the console's fallback never answers them. */
export const RESERVED_PREFIXES = ['/api', '/sdk', '/ofrep', '/auth', '/healthz', '/readyz', '/metrics', '/openapi.json'] as const;

/** True when `url` (path plus optional query) belongs to a reserved prefix, as a whole path segment. */
export function isReservedPath(url: string): boolean {
  const path = url.split('?', 1)[0] ?? '';
  return RESERVED_PREFIXES.some((p) => path === p || path.startsWith(p + '/'));
}

export const DEFAULT_CONSOLE_ROOT = fileURLToPath(new URL('../../console/dist/', import.meta.url));

// The console holds an admin token: no framing, no referrers, no third-party code or connections.
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

function setPageHeaders(reply: FastifyReply): FastifyReply {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
  // index.html names the hashed assets of the current build, so it must be revalidated.
  return reply.header('cache-control', 'no-cache').type('text/html; charset=utf-8');
}

/** The fastify plugin. Register it last-ish; it only adds GET routes outside the reserved prefixes. */
export async function consolePlugin(app: FastifyInstance, opts: ConsolePluginOptions = {}): Promise<void> {
  const root = opts.root ?? DEFAULT_CONSOLE_ROOT;
  const indexPath = join(root, 'index.html');
  const built = existsSync(indexPath);

  if (built) {
    await app.register(fastifyStatic, {
      root,
      prefix: '/',
      // Routes per built file, so the fallback below stays the only wildcard and cannot shadow API routes.
      wildcard: false,
      index: false,
      setHeaders(reply, filePath) {
        for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
        // Vite puts content hashes in asset names: they never change, so browsers may keep them forever.
        reply.header('cache-control', filePath.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    });
  }

  const page = async (reply: FastifyReply) => {
    if (!built) {
      return setPageHeaders(reply.code(503)).send(
        '<!doctype html><meta charset="utf-8"><title>Aviary</title><p>The console is not built. Run <code>npm run build</code> and restart the server.</p>',
      );
    }
    // Read per request: a rebuilt console is served without a restart, and the file is small.
    return setPageHeaders(reply).send(await readFile(indexPath));
  };

  app.get('/', async (_req, reply) => page(reply));
  app.get('/*', async (req, reply) => {
    const path = req.url.split('?', 1)[0] ?? '';
    // Unknown API paths, missing assets (an old tab asking for a previous build's file) and, before a build, every
    // path but `/` get the server's own problem+json 404, not the page in disguise. (Flag keys may contain dots, so
    // only asset extensions count as files.)
    if (!built || isReservedPath(path) || /\.(js|mjs|css|map|png|svg|ico|jpg|webp|woff2?|txt|webmanifest)$/i.test(path)) return reply.callNotFound();
    return page(reply);
  });
}

export default consolePlugin;
