/**
 * Coded errors and their RFC 9457 rendering. Every 4xx/5xx the server sends is `application/problem+json` with a
 * stable `type` URI (documented in docs/operations.md), a `title` that never varies for a type, the `status`, a
 * human `detail`, and for validation failures `errors: [{ path, message }]` (JSON-pointer paths into the body).
 */
import createError, { type FastifyError } from '@fastify/error';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { StoreError, type StoreErrorKind } from './storage/store-errors.js';

/** Base of the problem type URIs. They identify the kind of problem; they are not fetched by clients. */
export const PROBLEM_BASE = 'https://aviary.dev/problems/';

/** One field-level problem. `path` is a JSON pointer into the request body (or `/query/x`, `/params/x`, `/headers/x`). */
export interface ProblemIssue {
  path: string;
  message: string;
}

/** The RFC 9457 body Aviary sends. */
export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  errors?: ProblemIssue[];
  [extension: string]: unknown;
}

/** Stable problem kinds: slug → [status, title]. */
export const PROBLEMS = {
  'validation': [400, 'Request validation failed'],
  'malformed-body': [400, 'Malformed request body'],
  'bad-url': [400, 'Malformed URL'],
  'unauthorized': [401, 'Authentication required'],
  'forbidden': [403, 'Not allowed with this token'],
  'not-found': [404, 'Not found'],
  'method-not-allowed': [405, 'Method not allowed'],
  'conflict': [409, 'Conflict'],
  'in-use': [409, 'Resource in use'],
  'precondition-failed': [412, 'Precondition failed'],
  'payload-too-large': [413, 'Payload too large'],
  'uri-too-long': [414, 'URI too long'],
  'unsupported-media-type': [415, 'Unsupported media type'],
  'too-many-requests': [429, 'Too many requests'],
  'unavailable': [503, 'Service unavailable'],
  'internal': [500, 'Internal server error'],
} as const satisfies Record<string, readonly [number, string]>;

/** A problem slug (the last segment of the `type` URI). */
export type ProblemKind = keyof typeof PROBLEMS;

/** An error that renders as a problem document. */
export interface AviaryError extends FastifyError {
  problem: ProblemKind;
  errors?: ProblemIssue[];
  /** Extra members merged into the problem document (e.g. `flags` for a segment in use). */
  extensions?: Record<string, unknown>;
}

const ctor = {
  'validation': createError('AVIARY_VALIDATION', '%s', 400),
  'malformed-body': createError('AVIARY_MALFORMED_BODY', '%s', 400),
  'bad-url': createError('AVIARY_BAD_URL', '%s', 400),
  'unauthorized': createError('AVIARY_UNAUTHORIZED', '%s', 401),
  'forbidden': createError('AVIARY_FORBIDDEN', '%s', 403),
  'not-found': createError('AVIARY_NOT_FOUND', '%s', 404),
  'method-not-allowed': createError('AVIARY_METHOD_NOT_ALLOWED', '%s', 405),
  'conflict': createError('AVIARY_CONFLICT', '%s', 409),
  'in-use': createError('AVIARY_IN_USE', '%s', 409),
  'precondition-failed': createError('AVIARY_PRECONDITION_FAILED', '%s', 412),
  'payload-too-large': createError('AVIARY_PAYLOAD_TOO_LARGE', '%s', 413),
  'uri-too-long': createError('AVIARY_URI_TOO_LONG', '%s', 414),
  'unsupported-media-type': createError('AVIARY_UNSUPPORTED_MEDIA_TYPE', '%s', 415),
  'too-many-requests': createError('AVIARY_TOO_MANY_REQUESTS', '%s', 429),
  'unavailable': createError('AVIARY_UNAVAILABLE', '%s', 503),
  'internal': createError('AVIARY_INTERNAL', '%s', 500),
} satisfies Record<ProblemKind, unknown>;

/** Creates a coded error of the given kind; throw it from a route and the error handler renders it. */
export function problem(
  kind: ProblemKind,
  detail: string,
  extra: { errors?: ProblemIssue[]; extensions?: Record<string, unknown> } = {},
): AviaryError {
  const err = new ctor[kind](detail) as AviaryError;
  err.problem = kind;
  if (extra.errors) err.errors = extra.errors;
  if (extra.extensions) err.extensions = extra.extensions;
  return err;
}

/** A 400 validation problem listing each bad field. */
export function validationError(issues: ProblemIssue[], detail?: string): AviaryError {
  const first = issues[0];
  return problem('validation', detail ?? (first ? `${first.path || '/'}: ${first.message}` : 'invalid request'), {
    errors: issues,
  });
}

/** Type guard for errors created by {@link problem}. */
export function isAviaryError(err: unknown): err is AviaryError {
  return err instanceof Error && typeof (err as Partial<AviaryError>).problem === 'string';
}

/** Builds the problem document for a kind. */
export function problemDocument(
  kind: ProblemKind,
  detail: string,
  extra: { errors?: ProblemIssue[]; extensions?: Record<string, unknown>; instance?: string } = {},
): ProblemDocument {
  const [status, title] = PROBLEMS[kind];
  return {
    ...extra.extensions,
    type: PROBLEM_BASE + kind,
    title,
    status,
    detail,
    ...(extra.instance ? { instance: extra.instance } : {}),
    ...(extra.errors ? { errors: extra.errors } : {}),
  };
}

/** Sends a problem document. */
export function sendProblem(reply: FastifyReply, doc: ProblemDocument): FastifyReply {
  return reply.code(doc.status).type('application/problem+json').send(doc);
}

interface AjvIssue {
  instancePath?: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

/** Where fastify's request parts appear in issue paths: bodies at the root, the rest under their name. */
const PART_PREFIX: Record<string, string> = { body: '', querystring: '/query', params: '/params', headers: '/headers' };

/**
 * Converts fastify/ajv schema-validation issues into `{ path, message }` with JSON-pointer paths: into the body
 * (`/rules/0/op`), or `/query/<name>`, `/params/<name>` for a parameter.
 */
export function issuesFromAjv(validation: AjvIssue[], context?: string): ProblemIssue[] {
  const prefix = context === undefined ? '' : (PART_PREFIX[context] ?? `/${context}`);
  return validation.map((v) => {
    let path = prefix + (v.instancePath ?? '');
    const params = v.params ?? {};
    if (v.keyword === 'required' && typeof params.missingProperty === 'string') {
      path += `/${params.missingProperty}`;
    } else if (v.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
      path += `/${params.additionalProperty}`;
    }
    return { path, message: v.message ?? 'is invalid' };
  });
}

/** Maps a status code to the problem kind used when an error carries no kind of its own. */
function kindForStatus(status: number): ProblemKind {
  switch (status) {
    case 400:
      return 'malformed-body';
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
      return 'not-found';
    case 405:
      return 'method-not-allowed';
    case 409:
      return 'conflict';
    case 412:
      return 'precondition-failed';
    case 413:
      return 'payload-too-large';
    case 414:
      return 'uri-too-long';
    case 415:
      return 'unsupported-media-type';
    case 429:
      return 'too-many-requests';
    case 503:
      return 'unavailable';
    default:
      return status >= 500 ? 'internal' : 'malformed-body';
  }
}

const STORE_PROBLEMS: Record<StoreErrorKind, ProblemKind> = {
  'not-found': 'not-found',
  conflict: 'conflict',
  'in-use': 'in-use',
  invalid: 'validation',
  forbidden: 'forbidden',
};

/** The problem document for an error (5xx details are logged, never sent): what the fastify error handler sends. */
export function problemForError(error: FastifyError, instance: string | undefined, log: Pick<FastifyBaseLogger, 'error'>): ProblemDocument {
  if (error instanceof StoreError) {
    // What a store refused, in HTTP terms (server/storage/store-errors.ts).
    return problemDocument(STORE_PROBLEMS[error.kind], error.message, {
      ...(error.issues.length ? { errors: error.issues } : {}),
      ...(Object.keys(error.details).length ? { extensions: error.details } : {}),
      ...(instance ? { instance } : {}),
    });
  }
  if (isAviaryError(error)) {
    if (error.statusCode && error.statusCode >= 500) log.error({ err: error }, 'request failed');
    return problemDocument(error.problem, error.message, {
      ...(error.errors ? { errors: error.errors } : {}),
      ...(error.extensions ? { extensions: error.extensions } : {}),
      ...(instance ? { instance } : {}),
    });
  }
  if (error.validation) {
    const errors = issuesFromAjv(error.validation as AjvIssue[], error.validationContext);
    const first = errors[0];
    return problemDocument('validation', first ? `${first.path || '/'}: ${first.message}` : error.message, {
      errors,
      ...(instance ? { instance } : {}),
    });
  }
  const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
  if (status >= 500) {
    log.error({ err: error }, 'request failed');
    return problemDocument('internal', 'The server failed to handle this request; see its log.', instance ? { instance } : {});
  }
  return problemDocument(kindForStatus(status), error.message, instance ? { instance } : {});
}

/**
 * Storage that cannot take a write right now (a full disk or database, an I/O error, a lock held too long) is a
 * temporary condition for the client, not a bug: 503 with `Retry-After`, and the transaction rolled back (the writer's
 * transactions are all-or-nothing), so a retry is safe. Answers the detail and the seconds to wait, or null.
 */
export function storageUnavailable(error: unknown): { detail: string; retryAfterSeconds: number } | null {
  if (error instanceof Error && error.name === 'DatabaseUnavailableError') {
    return { detail: 'The database does not answer; nothing was changed. Retry shortly (any replica).', retryAfterSeconds: 2 };
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC')
    return { detail: 'The database is out of space; nothing was changed. Free disk space, then retry.', retryAfterSeconds: 30 };
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED')
    return { detail: 'The database is busy; nothing was changed. Retry shortly.', retryAfterSeconds: 1 };
  if (code.startsWith('SQLITE_IOERR') || code === 'EIO' || code === 'SQLITE_READONLY') {
    return { detail: 'The database cannot be written right now; nothing was changed. Retry shortly.', retryAfterSeconds: 5 };
  }
  return null;
}

/** fastify error handler: everything becomes a problem document ({@link problemForError}). */
export function problemErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const instance = request.url.split('?')[0];
  const storage = storageUnavailable(error);
  if (storage !== null) {
    request.log.error({ err: error }, 'storage unavailable');
    reply.header('retry-after', String(storage.retryAfterSeconds));
    return sendProblem(reply, problemDocument('unavailable', storage.detail, instance ? { instance } : {}));
  }
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    const type = String(request.headers['content-type'] ?? '')
      .split(';', 1)[0]!
      .slice(0, 100);
    return sendProblem(
      reply,
      problemDocument(
        'unsupported-media-type',
        `A body of type "${type}" is not accepted here: send application/json.`,
        instance ? { instance } : {},
      ),
    );
  }
  return sendProblem(reply, problemForError(error, instance, request.log));
}

/** fastify not-found handler. */
export function problemNotFoundHandler(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const instance = request.url.split('?')[0];
  return sendProblem(reply, problemDocument('not-found', `No route ${request.method} ${instance}`, instance ? { instance } : {}));
}

/**
 * fastify `frameworkErrors`: errors raised by the router before any route runs (a malformed percent-escape, a path
 * parameter over `maxParamLength`) would otherwise be sent as fastify's own JSON, not as problem documents.
 */
export function problemFrameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const instance = request.url.split('?')[0]?.slice(0, 200);
  const extra = instance ? { instance } : {};
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') return sendProblem(reply, problemDocument('uri-too-long', 'A path segment is too long.', extra));
  if (error.code === 'FST_ERR_BAD_URL') return sendProblem(reply, problemDocument('bad-url', 'The URL is not validly percent-encoded.', extra));
  return problemErrorHandler(error, request, reply);
}
