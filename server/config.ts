/**
 * Server configuration from the environment (CONTRACT §8). Pure: takes the variables, returns a config or throws
 * a message naming the bad variable, so `main.ts` can print it and exit.
 */

/** Everything `main.ts` needs to boot. */
export interface ServerConfig {
  host: string;
  port: number;
  dbPath: string;
  /** `AVIARY_ADMIN_TOKEN`, accepted as an admin token when set. */
  adminToken?: string;
  /** `AVIARY_SDK_KEY_<ENV>`: environment key (lower-cased, `_` → `-`) → SDK key. */
  sdkKeys: Record<string, string>;
  logLevel: string;
  /** How long SIGTERM waits for in-flight requests before closing the database anyway. */
  shutdownTimeoutMs: number;
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
  return {
    host: env.AVIARY_HOST || '127.0.0.1',
    port,
    dbPath: env.AVIARY_DB || './data/aviary.db',
    ...(adminToken ? { adminToken } : {}),
    sdkKeys,
    logLevel: env.AVIARY_LOG_LEVEL || 'info',
    shutdownTimeoutMs,
  };
}

/** `AVIARY_TRUST_PROXY=true`: behind a proxy, so a request's client address comes from `X-Forwarded-For`. */
export function trustProxyFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.AVIARY_TRUST_PROXY === 'true';
}
