/**
 * Serves the web console (`console/dist`, built by `npm run build`) at `/`, with a fallback to `index.html` for the
 * console's own client-side routes. The API's prefixes are never answered with the page: an unknown `/api/...` path
 * must stay a problem+json 404 for scripts, not 200 HTML.
 */
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

/** Asset paths: only these extensions are files (flag keys in client-side routes may contain dots). */
const ASSET = /\.(js|mjs|css|map|png|svg|ico|jpg|webp|woff2?|txt|webmanifest)$/i;

/**
 * The fastify plugin. Register it last-ish; it only adds GET routes outside the reserved prefixes.
 *
 * Everything is read from disk when asked for, not listed at boot: `npm run build` while the server runs replaces
 * `index.html` and the hashed assets it names, and the next page load gets the new page and finds its new assets (a
 * list of asset routes made at boot would answer 404 for them and leave a blank page). `@fastify/static` is used only
 * for `reply.sendFile` (streaming, ranges, ETags, and no path escaping the root).
 */
export async function consolePlugin(app: FastifyInstance, opts: ConsolePluginOptions = {}): Promise<void> {
  const root = opts.root ?? DEFAULT_CONSOLE_ROOT;
  const indexPath = join(root, 'index.html');

  await app.register(fastifyStatic, {
    root,
    serve: false,
    index: false,
    setHeaders(reply, filePath) {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
      // Vite puts content hashes in asset names: they never change, so browsers may keep them forever.
      reply.header('cache-control', filePath.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });

  const page = async (reply: FastifyReply) => {
    let html: Buffer;
    try {
      // Read per request: a rebuilt console is served without a restart, and the file is small.
      html = await readFile(indexPath);
    } catch {
      return setPageHeaders(reply.code(503)).send(
        '<!doctype html><meta charset="utf-8"><title>Aviary</title><p>The console is not built. Run <code>npm run build</code> and reload.</p>',
      );
    }
    return setPageHeaders(reply).send(html);
  };

  app.get('/', async (_req, reply) => page(reply));
  app.get('/*', async (req, reply) => {
    const path = req.url.split('?', 1)[0] ?? '';
    // Unknown API paths get the server's own problem+json 404, not the page in disguise.
    if (isReservedPath(path)) return reply.callNotFound();
    // A file of the current build, or the problem+json 404 (an old tab asking for a previous build's file).
    if (ASSET.test(path)) {
      let file: string;
      try {
        file = decodeURIComponent(path.slice(1));
      } catch {
        return reply.callNotFound();
      }
      return reply.sendFile(file);
    }
    return page(reply);
  });
}

export default consolePlugin;
