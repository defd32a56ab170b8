/**
 * Logger configuration (pino, through fastify) that never writes a secret: bearer tokens, websocket subprotocols
 * carrying SDK keys, cookies, and token secrets in bodies are redacted wherever a log call might put them, and
 * query-string values whose names suggest a credential are masked in logged URLs.
 */
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify';

type FastifyChildLoggerFactory = NonNullable<FastifyServerOptions['childLoggerFactory']>;

const CENSOR = '[redacted]';

/** Log paths that may hold a secret. pino's redaction is path-based, so each place a header or body can appear is listed. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["sec-websocket-protocol"]',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers["sec-websocket-protocol"]',
  'headers.cookie',
  'res.headers["set-cookie"]',
  'token',
  'secret',
  'sdkKey',
  'adminToken',
  'sdkKeys',
  '*.token',
  '*.secret',
  '*.sdkKey',
  '*.adminToken',
  '*.sdkKeys',
  'body.token',
  'req.body.token',
];

const SECRET_QUERY_NAME = /token|key|secret|auth|password|ticket/i;

/** A trigger URL's path carries its secret (server/triggers/hook-routes.ts). */
const TRIGGER_PATH = /^(\/hooks\/v1\/triggers\/)[^/?#]+/;

/**
 * A URL with the values of credential-like query parameters masked (`/x?token=abc` → `/x?token=[redacted]`), and the
 * secret of a trigger URL (`/hooks/v1/triggers/<secret>`) too.
 */
export function redactUrl(raw: string): string {
  const url = raw.replace(TRIGGER_PATH, `$1${CENSOR}`);
  const q = url.indexOf('?');
  if (q < 0) return url;
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name);
      } catch {
        // a malformed escape is still a name; test it as sent
      }
      return eq >= 0 && SECRET_QUERY_NAME.test(decoded) ? `${name}=${CENSOR}` : pair;
    })
    .join('&');
  return `${url.slice(0, q)}?${query}`;
}

interface LoggedRequest {
  method?: string;
  url?: string;
  ip?: string;
  socket?: { remotePort?: number };
  routeOptions?: { url?: string };
}

/**
 * fastify `logger` options: JSON lines at `level`, secrets redacted. Pass `stream` to capture the output (tests).
 */
export function loggerOptions(level = 'info', stream?: { write(line: string): void }): NonNullable<FastifyServerOptions['logger']> {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: CENSOR },
    serializers: {
      req(request: LoggedRequest) {
        return {
          method: request.method,
          url: redactUrl(request.url ?? ''),
          route: request.routeOptions?.url,
          remoteAddress: request.ip,
        };
      },
    },
    ...(stream ? { stream } : {}),
  };
}

type LogMethod = (...args: unknown[]) => void;
type PinoLike = Record<'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace', LogMethod> & {
  level: string;
  isLevelEnabled(level: string): boolean;
  child(bindings: Record<string, unknown>, options?: Record<string, unknown>): PinoLike;
};

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/**
 * A request's logger that becomes a real pino child only when something is logged at an enabled level. pino builds
 * a child (bindings serialized, redaction wired) for every request otherwise: about 2 µs per request on the SDK
 * routes, which log nothing when they succeed.
 */
class LazyRequestLogger {
  private real: PinoLike | null = null;

  constructor(
    private readonly parent: PinoLike,
    private readonly bindings: Record<string, unknown>,
  ) {}

  private logger(): PinoLike {
    return (this.real ??= this.parent.child(this.bindings));
  }

  get level(): string {
    return this.real?.level ?? this.parent.level;
  }

  set level(level: string) {
    this.logger().level = level;
  }

  isLevelEnabled(level: string): boolean {
    return (this.real ?? this.parent).isLevelEnabled(level);
  }

  child(bindings: Record<string, unknown>, options?: Record<string, unknown>): PinoLike {
    return this.logger().child(bindings, options);
  }

  silent(): void {}

  declare fatal: LogMethod;
  declare error: LogMethod;
  declare warn: LogMethod;
  declare info: LogMethod;
  declare debug: LogMethod;
  declare trace: LogMethod;
}
for (const level of LEVELS) {
  LazyRequestLogger.prototype[level] = function (this: LazyRequestLogger, ...args: unknown[]) {
    if (!this.isLevelEnabled(level)) return;
    (this as unknown as { logger(): PinoLike }).logger()[level](...args);
  };
}

/**
 * fastify `childLoggerFactory`: request loggers created lazily (see LazyRequestLogger). A route-level log level
 * (child options) gets a real child at once, since it changes what the request logs.
 */
export const lazyChildLoggerFactory: FastifyChildLoggerFactory = (logger, bindings, options) => {
  const parent = logger as unknown as PinoLike;
  const opts = options as Record<string, unknown>;
  return (Object.keys(opts).length ? parent.child(bindings, opts) : new LazyRequestLogger(parent, bindings)) as unknown as FastifyBaseLogger;
};
