/**
 * Server configuration from the environment (CONTRACT §8). Pure: takes the variables, returns a config or throws
 * a message naming the bad variable, so `main.ts` can print it and exit. This is the only module that reads
 * `process.env`; everything else takes its settings as options (buildApp's, in server/app.ts).
 */
import { isIP } from 'node:net';
import { parseDefaultRole, parseRoleMap } from './oidc/claim-mapping.js';
import type { OidcSettings } from './oidc/oidc-settings.js';

/**
 * fastify's `trustProxy`: `false` (use the socket's address), the addresses (and CIDR ranges, or proxy-addr's names
 * `loopback`, `linklocal`, `uniquelocal`) of the proxies to trust, or a function trusting the first N hops. Never
 * `true`: trusting every hop makes the leftmost `X-Forwarded-For` value, which any client can write, the client's
 * address. (A plain number is not used: fastify 5 ignores hop counts given as numbers.)
 */
export type TrustProxy = false | string | ((address: string, hop: number) => boolean);

/** Trusts the nearest `hops` proxies: the client is the `hops`-th `X-Forwarded-For` entry from the right. */
export function trustHops(hops: number): (address: string, hop: number) => boolean {
  return (_address, hop) => hop < hops;
}

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** Everything `main.ts` needs to boot. */
export interface ServerConfig {
  host: string;
  port: number;
  dbPath: string;
  /** `AVIARY_DATABASE_URL`: PostgreSQL (replicas, CONTRACT §9); wins over `AVIARY_DB` when both are set. */
  databaseUrl?: string;
  /** `AVIARY_DB_TIMEOUT_MS`: how long a request waits for the database before answering 503. Default 5000. */
  dbTimeoutMs: number;
  /** `AVIARY_REPLICA_POLL_MS`: how often a replica polls the change log in case a notification was lost. Default 2000. */
  replicaPollMs: number;
  /** `AVIARY_DB_POOL_SIZE`: PostgreSQL connections per replica (plus one for LISTEN). Default 10. */
  dbPoolSize: number;
  /** `AVIARY_ADMIN_TOKEN`, accepted as an admin token when set. */
  adminToken?: string;
  /** `AVIARY_SDK_KEY_<ENV>`: environment key (lower-cased, `_` → `-`) → SDK key. */
  sdkKeys: Record<string, string>;
  logLevel: string;
  /** How long SIGTERM waits for in-flight requests before closing the database anyway. */
  shutdownTimeoutMs: number;
  /** `AVIARY_TRUST_PROXY`. */
  trustProxy: TrustProxy;
  /** `AVIARY_SLOW_REQUEST_MS`: requests slower than this are logged as warnings. */
  slowRequestMs: number;
  /** `AVIARY_AUTH_FAILURE_LIMIT` per `AVIARY_AUTH_FAILURE_WINDOW_SECONDS`, per client address. */
  authFailures: { limit: number; windowMs: number };
  /** `AVIARY_METRICS_RETENTION_DAYS`. */
  metricsRetentionDays: number;
  /** `AVIARY_STREAM_HYDRATION_BURST`, `AVIARY_STREAM_HYDRATIONS_PER_MINUTE`: snapshots per SDK key and client address. */
  hydrations: { burst: number; perMinute: number };
  /** Per-SDK-key metrics limits that are set (unset ones keep the defaults of server/metrics/). */
  metricsLimits: {
    rowsPerMinute?: number;
    bytesPerMinute?: number;
    maxFutureMs?: number;
    maxCountServerSide?: number;
    maxCountClientSide?: number;
  };
  /** `AVIARY_EVAL_MS_PER_SECOND`: server-side evaluation time per SDK key per second, when set. */
  evaluationMsPerSecond?: number;
  /** OpenID Connect sign-in for the console, when `AVIARY_OIDC_ISSUER`, `_CLIENT_ID` and `_CLIENT_SECRET` are set. */
  oidc?: OidcSettings;
}

/**
 * OpenID Connect settings (docs/operations.md, "Signing in with OpenID Connect"): undefined unless the issuer, the
 * client id and the client secret are all set; setting only some of them is an error, not a silent fallback.
 */
export function readOidcConfig(env: NodeJS.ProcessEnv): OidcSettings | undefined {
  const names = ['AVIARY_OIDC_ISSUER', 'AVIARY_OIDC_CLIENT_ID', 'AVIARY_OIDC_CLIENT_SECRET'] as const;
  const set = names.filter((n) => env[n]);
  if (set.length === 0) return undefined;
  if (set.length < names.length)
    throw new Error(`${names.filter((n) => !env[n]).join(' and ')} must be set too (OpenID Connect sign-in needs all of ${names.join(', ')})`);
  const url = (name: string, raw: string | undefined) => {
    try {
      const u = new URL(raw ?? '');
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error();
      return u;
    } catch {
      throw new Error(`${name} must be an http(s) URL, got ${JSON.stringify(raw)}`);
    }
  };
  const issuer = url('AVIARY_OIDC_ISSUER', env.AVIARY_OIDC_ISSUER);
  if (!env.AVIARY_PUBLIC_URL)
    throw new Error('AVIARY_PUBLIC_URL must be set with OpenID Connect (the redirect URI is <AVIARY_PUBLIC_URL>/auth/oidc/callback)');
  const publicUrl = url('AVIARY_PUBLIC_URL', env.AVIARY_PUBLIC_URL);
  const rules = parseRoleMap(env.AVIARY_OIDC_ROLE_MAP ?? '');
  const defaultRole = parseDefaultRole(env.AVIARY_OIDC_DEFAULT_ROLE);
  if (rules.length === 0 && defaultRole === null)
    throw new Error('AVIARY_OIDC_ROLE_MAP or AVIARY_OIDC_DEFAULT_ROLE must be set: otherwise nobody could sign in');
  return {
    issuer: issuer.href.replace(/\/$/, ''),
    clientId: env.AVIARY_OIDC_CLIENT_ID as string,
    clientSecret: env.AVIARY_OIDC_CLIENT_SECRET as string,
    publicUrl: publicUrl.origin + publicUrl.pathname.replace(/\/+$/, ''),
    scopes: env.AVIARY_OIDC_SCOPES?.trim() || 'openid email profile',
    displayName: env.AVIARY_OIDC_NAME?.trim() || issuer.host,
    mapping: { claim: env.AVIARY_OIDC_ROLE_CLAIM?.trim() || 'groups', rules, defaultRole },
    sessionIdleMs: positive(env, 'AVIARY_SESSION_IDLE_MINUTES', 60) * 60_000,
    sessionMaxMs: positive(env, 'AVIARY_SESSION_MAX_HOURS', 12) * 3_600_000,
  };
}

/** A positive number from `name`, or undefined when unset; throws naming the variable otherwise. */
function optionalPositive(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  return raw === undefined || raw === '' ? undefined : positive(env, name, 0);
}

/** `{ [key]: value }` when the value is set, else `{}` (exactOptionalPropertyTypes-friendly spreading). */
function setOnly<K extends string>(key: K, value: number | undefined): { [P in K]?: number } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: number };
}

const mul = (n: number | undefined, by: number) => (n === undefined ? undefined : n * by);

/** A positive number from `name`, or `fallback` when unset; throws naming the variable otherwise. */
function positive(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

/**
 * `AVIARY_TRUST_PROXY`: unset or `false` → no proxy; `true` → one proxy in front (the rightmost `X-Forwarded-For`
 * entry, the one the proxy wrote, is the client); a whole number → that many proxies; otherwise a comma-separated list
 * of the proxies' addresses, CIDR ranges or `loopback`/`linklocal`/`uniquelocal` (safest: a client that reaches the
 * server without the proxy cannot pass for another). Entries a client wrote itself are never taken for its address.
 */
export function parseTrustProxy(raw: string | undefined): TrustProxy {
  const v = (raw ?? '').trim();
  if (v === '' || v === 'false') return false;
  if (v === 'true') return trustHops(1);
  if (/^[0-9]+$/.test(v)) {
    const hops = Number(v);
    if (hops < 1 || hops > 16) throw new Error(`AVIARY_TRUST_PROXY: a number of proxies must be from 1 to 16, got ${v}`);
    return trustHops(hops);
  }
  const parts = v.split(',').map((p) => p.trim());
  for (const p of parts) {
    if (PROXY_NAMES.has(p)) continue;
    const [address, bits, extra] = p.split('/');
    const family = isIP(address ?? '');
    const maxBits = family === 6 ? 128 : 32;
    const badBits = bits !== undefined && (!/^[0-9]{1,3}$/.test(bits) || Number(bits) > maxBits);
    if (family === 0 || badBits || extra !== undefined) {
      throw new Error(
        `AVIARY_TRUST_PROXY must be true, false, a number of proxies, or proxy addresses, CIDR ranges or ${[...PROXY_NAMES].join('/')} separated by commas; ${JSON.stringify(p)} is none of these`,
      );
    }
  }
  return parts.join(',');
}

/** Reads the configuration from `env` (defaults: 127.0.0.1:4242, ./data/aviary.db). */
export function readConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const port = Number(env.AVIARY_PORT ?? 4242);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`AVIARY_PORT must be an integer from 0 to 65535, got ${JSON.stringify(env.AVIARY_PORT)}`);
  }
  const sdkKeys: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    const m = /^AVIARY_SDK_KEY_([A-Z0-9_]+)$/.exec(name);
    if (m?.[1] && value) sdkKeys[m[1].toLowerCase().replaceAll('_', '-')] = value;
  }
  const adminToken = env.AVIARY_ADMIN_TOKEN || undefined;
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new Error('AVIARY_ADMIN_TOKEN must be at least 16 characters');
  }
  const shutdownTimeoutMs = Number(env.AVIARY_SHUTDOWN_TIMEOUT_MS ?? 10_000);
  if (!Number.isFinite(shutdownTimeoutMs) || shutdownTimeoutMs < 0) {
    throw new Error(`AVIARY_SHUTDOWN_TIMEOUT_MS must be a non-negative number, got ${JSON.stringify(env.AVIARY_SHUTDOWN_TIMEOUT_MS)}`);
  }
  const oidc = readOidcConfig(env);
  const databaseUrl = env.AVIARY_DATABASE_URL || undefined;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new Error('AVIARY_DATABASE_URL must be a postgres:// URL (postgres://user:password@host:port/database)');
  }
  return {
    host: env.AVIARY_HOST || '127.0.0.1',
    port,
    dbPath: env.AVIARY_DB || './data/aviary.db',
    ...(databaseUrl ? { databaseUrl } : {}),
    dbTimeoutMs: positive(env, 'AVIARY_DB_TIMEOUT_MS', 5000),
    replicaPollMs: positive(env, 'AVIARY_REPLICA_POLL_MS', 2000),
    dbPoolSize: positive(env, 'AVIARY_DB_POOL_SIZE', 10),
    ...(adminToken ? { adminToken } : {}),
    sdkKeys,
    logLevel: env.AVIARY_LOG_LEVEL || 'info',
    shutdownTimeoutMs,
    trustProxy: parseTrustProxy(env.AVIARY_TRUST_PROXY),
    slowRequestMs: positive(env, 'AVIARY_SLOW_REQUEST_MS', 1000),
    authFailures: {
      limit: positive(env, 'AVIARY_AUTH_FAILURE_LIMIT', 30),
      windowMs: positive(env, 'AVIARY_AUTH_FAILURE_WINDOW_SECONDS', 60) * 1000,
    },
    metricsRetentionDays: positive(env, 'AVIARY_METRICS_RETENTION_DAYS', 30),
    hydrations: { burst: positive(env, 'AVIARY_STREAM_HYDRATION_BURST', 1000), perMinute: positive(env, 'AVIARY_STREAM_HYDRATIONS_PER_MINUTE', 120) },
    metricsLimits: {
      ...setOnly('rowsPerMinute', optionalPositive(env, 'AVIARY_METRICS_KEY_ROWS_PER_MINUTE')),
      ...setOnly('bytesPerMinute', optionalPositive(env, 'AVIARY_METRICS_KEY_BYTES_PER_MINUTE')),
      ...setOnly('maxFutureMs', mul(optionalPositive(env, 'AVIARY_METRICS_MAX_FUTURE_SECONDS'), 1000)),
      ...setOnly('maxCountServerSide', optionalPositive(env, 'AVIARY_METRICS_MAX_ROW_COUNT')),
      ...setOnly('maxCountClientSide', optionalPositive(env, 'AVIARY_METRICS_MAX_ROW_COUNT_CLIENT_SIDE')),
    },
    ...setOnly('evaluationMsPerSecond', optionalPositive(env, 'AVIARY_EVAL_MS_PER_SECOND')),
    ...(oidc ? { oidc } : {}),
  };
}

// relay: begin (issue 13)
/** What `aviary relay` needs (CONTRACT §10). */
export interface RelayConfig {
  host: string;
  port: number;
  /** `AVIARY_UPSTREAM`: the URL of a server, replica or another relay. */
  upstream: string;
  /** `AVIARY_RELAY_TOKEN`: a relay token of that upstream. */
  relayToken: string;
  /** `AVIARY_RELAY_CACHE`: the disk cache directory. Default ./data/relay. */
  cacheDir: string;
  logLevel: string;
  shutdownTimeoutMs: number;
  trustProxy: TrustProxy;
  authFailures: { limit: number; windowMs: number };
  slowRequestMs: number;
  hydrations: { burst: number; perMinute: number };
}

/** Reads the relay's configuration; throws a message naming the bad variable. */
export function readRelayConfig(env: NodeJS.ProcessEnv = process.env): RelayConfig {
  const upstream = env.AVIARY_UPSTREAM ?? '';
  if (!/^https?:\/\/[^/\s]+/.test(upstream)) throw new Error('AVIARY_UPSTREAM must be the http(s):// URL of an Aviary server or relay');
  const relayToken = env.AVIARY_RELAY_TOKEN ?? '';
  if (relayToken.length < 16) throw new Error('AVIARY_RELAY_TOKEN must be set to a relay token (POST /api/v1/tokens {"kind":"relay"} upstream)');
  const base = readConfig({ ...env, AVIARY_DATABASE_URL: '' });
  return {
    host: base.host,
    port: base.port,
    upstream: upstream.replace(/\/+$/, ''),
    relayToken,
    cacheDir: env.AVIARY_RELAY_CACHE || './data/relay',
    logLevel: base.logLevel,
    shutdownTimeoutMs: base.shutdownTimeoutMs,
    trustProxy: base.trustProxy,
    authFailures: base.authFailures,
    slowRequestMs: base.slowRequestMs,
    hydrations: base.hydrations,
  };
}
// relay: end
