/**
 * Serves the SDK's browser bundle (`sdk/dist/aviary.browser.js`, built by `sdk/scripts/bundle.mjs`: `npm run build`,
 * and `npm start` when it is missing) at `GET /sdk/v1/aviary.js`, with its source map at `/sdk/v1/aviary.js.map`, so
 * a page needs nothing but the server:
 *
 *   <script type="module">import { createClient } from 'https://flags.example.com/sdk/v1/aviary.js'; ...</script>
 *
 * No SDK key: the bundle is public code, and a `<script>` cannot send one. Pages of any origin may load it (module
 * scripts are fetched with CORS). Caches keep it five minutes, then revalidate with the ETag, so pages pick up the
 * server's SDK soon after an upgrade. The file is read again when it changes: a rebuilt bundle needs no restart.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { problem } from '../errors.js';

/** Options of the SDK bundle plugin. */
export interface SdkBundlePluginOptions {
  /** Directory holding `aviary.browser.js` and its `.map` (default: the `dist` directory of `@aviary/sdk`). */
  dir?: string;
}

/** Where the bundle is served. */
export const SDK_BUNDLE_PATH = '/sdk/v1/aviary.js';

/** `@aviary/sdk`'s build output, found through the package (the same from the sources and from a compiled server). */
export const DEFAULT_SDK_DIST = join(dirname(createRequire(import.meta.url).resolve('@aviary/sdk/package.json')), 'dist');

const CACHE_CONTROL = 'public, max-age=300';

interface Asset {
  body: Buffer;
  gzip: Buffer;
  etag: string;
  mtimeMs: number;
  size: number;
}

/** One built file, kept in memory (as sent, and gzipped) until the file on disk changes. */
function servedFile(path: string, transform: (text: string) => string = (t) => t): () => Promise<Asset | null> {
  let cached: Asset | null = null;
  return async () => {
    const st = await stat(path).catch(() => null);
    if (!st) return null;
    if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached;
    const body = Buffer.from(transform(await readFile(path, 'utf8')));
    // Weak: the gzipped and the plain bytes are the same representation for caches and If-None-Match.
    const etag = `W/"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    cached = { body, gzip: gzipSync(body, { level: 9 }), etag, mtimeMs: st.mtimeMs, size: st.size };
    return cached;
  };
}

/** If-None-Match (a list of entity tags, or `*`) against our ETag, by weak comparison (RFC 9110 §13.1.2). */
function notModified(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const opaque = etag.replace(/^W\//, '');
  return header.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t.replace(/^W\//, '') === opaque;
  });
}

function acceptsGzip(header: string | undefined): boolean {
  return (header ?? '').split(',').some((part) => {
    const [coding, ...params] = part.trim().split(';');
    if (coding?.trim().toLowerCase() !== 'gzip') return false;
    const q = params.map((p) => /^\s*q\s*=\s*([\d.]+)\s*$/i.exec(p)?.[1]).find((v) => v !== undefined);
    return q === undefined || Number(q) > 0;
  });
}

async function send(request: FastifyRequest, reply: FastifyReply, asset: Asset | null, type: string): Promise<FastifyReply> {
  if (!asset) throw problem('unavailable', 'The SDK browser bundle is not built: run `npm run build` (`npm start` builds it when it is missing).');
  reply
    .header('etag', asset.etag)
    .header('cache-control', CACHE_CONTROL)
    .header('vary', 'accept-encoding')
    .header('access-control-allow-origin', '*')
    .header('cross-origin-resource-policy', 'cross-origin')
    .header('x-content-type-options', 'nosniff');
  if (notModified(request.headers['if-none-match'], asset.etag)) return reply.code(304).send();
  reply.type(type);
  if (acceptsGzip(request.headers['accept-encoding'])) return reply.header('content-encoding', 'gzip').send(asset.gzip);
  return reply.send(asset.body);
}

/** The fastify plugin: `GET /sdk/v1/aviary.js` and `GET /sdk/v1/aviary.js.map`, without authentication. */
export async function sdkBundlePlugin(app: FastifyInstance, opts: SdkBundlePluginOptions = {}): Promise<void> {
  const dir = opts.dir ?? DEFAULT_SDK_DIST;
  // The build names its map after its own file; served under another name, the bundle points at the map's new name.
  const bundle = servedFile(join(dir, 'aviary.browser.js'), (code) =>
    code.replace(/\/\/# sourceMappingURL=\S+\s*$/, '//# sourceMappingURL=aviary.js.map\n'),
  );
  const map = servedFile(join(dir, 'aviary.browser.js.map'));
  app.get(SDK_BUNDLE_PATH, async (request, reply) => send(request, reply, await bundle(), 'text/javascript; charset=utf-8'));
  app.get(`${SDK_BUNDLE_PATH}.map`, async (request, reply) => send(request, reply, await map(), 'application/json; charset=utf-8'));
}

export default sdkBundlePlugin;
