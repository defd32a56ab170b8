/**
 * The hot path of `POST /sdk/v1/evaluate`, served in front of fastify's request pipeline.
 *
 * Why: server-side evaluation is what clients without a local evaluator call on every page view or request. Through
 * fastify's full pipeline (hooks for auth, metrics and rate limits, the content-type parser, schema validation,
 * reply serialization) the route ran at about half the throughput of a bare fastify route; the work that is really
 * Aviary's (authentication, validation, ten evaluations, the answer's JSON) is a few microseconds of that.
 *
 * How, and what stays fastify's: the server's `request` listener is wrapped. A request is taken here only if, from its
 * head alone, it is the plain successful case: `POST /sdk/v1/evaluate` with no query string, a JSON content type, a
 * content length within the body limit, no `Expect`, a valid SDK key, no address under an auth-failure block, the
 * server not closing, and logging below debug. Anything else goes to fastify untouched (its body not read): missing
 * or bad keys (so failures are counted, logged and rate-limited in one place), other content types, chunked bodies,
 * debug logging. Once the body is read, failures are answered here with the same problem documents fastify's error
 * handler sends (`problemForError`): malformed JSON (fastify's own JSON parser, prototype poisoning refused), and
 * schema violations (the same validator, compiled from the same OpenAPI schema). Metrics and the slow-request
 * warning are recorded as the ops plugin records them. test/server/evaluate-fast-path.test.ts checks that both paths
 * answer alike.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { EvaluationContext } from '@aviary/sdk/core';
import { isAviaryError, problem as notFound, problemForError, type ProblemDocument } from '../errors.js';
import { createValidatorCompiler, requestBody } from '../openapi/validation.js';
import { slowRequestMs } from '../ops/logging.js';
import type { CompiledEnvironmentCache } from './compiled-cache.js';
import { evaluateAnswerJson } from './evaluate-json.js';

const PATH = '/sdk/v1/evaluate';
const BEARER = /^Bearer[ ]+(\S+)\s*$/i;
const JSON_TYPE = /^application\/json\s*(?:;\s*charset=utf-8\s*)?$/i;

/** The bearer secret of an Authorization header (the exact `Bearer <secret>` SDKs send, without a regex). */
function bearer(header: string): string | undefined {
  if (header.startsWith('Bearer ') && header.indexOf(' ', 7) < 0 && header.length > 7) return header.slice(7);
  return BEARER.exec(header)?.[1];
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void;
type BodyCheck = ((data: unknown) => boolean) & { errors: unknown[] | null };

const served = new WeakMap<object, { count: number }>();

/** How many requests the fast path has answered on this HTTP server (tests check which path answered). */
export function fastPathServed(server: object): number {
  return served.get(server)?.count ?? 0;
}

/** Installs the fast path on `app.server`; returns a function that turns it off (the app calls it on close). */
export function installEvaluateFastPath(app: FastifyInstance, cache: CompiledEnvironmentCache): () => void {
  const listeners = app.server.listeners('request') as Listener[];
  if (listeners.length !== 1) throw new Error(`expected fastify's one request listener, found ${listeners.length}`);
  const fastify = listeners[0]!;
  const bodyLimit = app.initialConfig.bodyLimit ?? 1024 * 1024;
  const parseJson = app.getDefaultJsonParser('error', 'error') as unknown as (req: unknown, body: string, done: (err: FastifyError | null, value?: unknown) => void) => void;
  const check = createValidatorCompiler()({ schema: requestBody('sdkEvaluate'), httpPart: 'body', method: 'POST', url: PATH }) as unknown as BodyCheck;
  const series = (status: number) => app.prometheus.requests.series('POST', PATH, status);
  const ok = series(200);
  const slowMs = slowRequestMs();
  const log = app.log;
  // fastify's null logger (logger: false) has no isLevelEnabled.
  const levelEnabled = (log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.bind(log);
  let enabled = true;
  const stats = { count: 0 };
  served.set(app.server, stats);

  const finish = (req: IncomingMessage, start: number, status: number) => {
    const elapsed = performance.now() - start;
    (status === 200 ? ok : series(status)).record(elapsed / 1000);
    if (elapsed >= slowMs) {
      const logged = { method: req.method, url: req.url, ip: req.socket.remoteAddress, routeOptions: { url: PATH } };
      log.warn({ req: logged, res: { statusCode: status }, responseTime: elapsed }, 'slow request');
    }
  };

  const problem = (req: IncomingMessage, res: ServerResponse, start: number, doc: ProblemDocument) => {
    const body = JSON.stringify(doc);
    res.writeHead(doc.status, { 'content-type': 'application/problem+json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    finish(req, start, doc.status);
  };

  const respond = (req: IncomingMessage, res: ServerResponse, start: number, { environment, tokenId }: { environment: string; tokenId: string }, text: string) => {
    let body: unknown;
    let failure: FastifyError | null = null;
    parseJson(req, text, (err, value) => {
      failure = err;
      body = value;
    });
    if (failure) return problem(req, res, start, problemForError(failure, PATH, log));
    if (!check(body)) {
      const error = Object.assign(new Error('body is invalid'), { validation: check.errors, validationContext: 'body' }) as FastifyError;
      return problem(req, res, start, problemForError(error, PATH, log));
    }
    const { context, flags } = body as { context: EvaluationContext; flags?: string[] };
    const env = cache.get(environment);
    if (!env) return problem(req, res, start, problemForError(notFound('not-found', `Environment "${environment}" no longer exists.`), PATH, log));
    let json: string;
    try {
      json = app.evaluationTime.run(tokenId, () => evaluateAnswerJson(env, environment, context, flags));
    } catch (err) {
      if (isAviaryError(err)) return problem(req, res, start, problemForError(err, PATH, log));
      throw err;
    }
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) });
    res.end(json);
    finish(req, start, 200);
  };

  /** The SDK key's environment and id when the request is the plain case this path serves, else null (fastify's). */
  const eligible = (req: IncomingMessage): { environment: string; tokenId: string } | null => {
    if (!enabled || req.method !== 'POST' || req.url !== PATH) return null;
    const { headers } = req;
    const type = headers['content-type'];
    const length = Number(headers['content-length']);
    if (type === undefined || (type !== 'application/json' && !JSON_TYPE.test(type)) || !(length > 0 && length <= bodyLimit) || headers.expect !== undefined) return null;
    if (levelEnabled?.('debug')) return null;
    // Only valid keys are served here, and valid credentials are never refused for others' failures (ops plugin).
    const secret = headers.authorization === undefined ? undefined : bearer(headers.authorization);
    const token = secret === undefined ? null : app.stores.tokens.authenticateOn(req.socket, secret);
    return token !== null && token.kind === 'sdk' && token.environment ? { environment: token.environment, tokenId: token.id } : null;
  };

  const listener: Listener = (req, res) => {
    let environment: { environment: string; tokenId: string } | null;
    try {
      environment = eligible(req);
    } catch {
      environment = null;
    }
    if (environment === null) return fastify(req, res);
    const start = performance.now();
    stats.count++;
    // Bytes, decoded once at the end (a small body arrives in one chunk; no string decoder per request).
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      try {
        const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
        respond(req, res, start, environment, text);
      } catch (err) {
        log.error({ err }, 'request failed');
        if (!res.headersSent) problem(req, res, start, problemForError(err as FastifyError, PATH, { error: () => {} }));
        else res.destroy();
      }
    });
  };

  app.server.removeListener('request', fastify);
  app.server.on('request', listener);
  return () => {
    enabled = false;
  };
}
