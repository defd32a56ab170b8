/**
 * `npm start`: environment → open the database (pragmas, migrations) → buildApp → listen. SIGTERM/SIGINT drain:
 * stop accepting, let in-flight requests (and their write transactions) finish, close the database, exit.
 */
import { buildApp } from './app.js';
import { readConfig, type ServerConfig } from './config.js';
import { loggerOptions } from './ops/logging.js';
import { DatabaseLockedError } from './storage/db-lock.js';
import type { StorePort } from './storage/port.js';
import { hidePassword, openPostgres } from './storage/postgres-port.js';
import { openSqlite } from './storage/sqlite-port.js';

async function main(): Promise<void> {
  let config: ServerConfig;
  try {
    config = readConfig();
  } catch (err) {
    process.stderr.write(`aviary: ${(err as Error).message}\n`);
    process.exit(2);
  }
  let store: StorePort;
  try {
    store = config.databaseUrl
      ? await openPostgres(config.databaseUrl, { timeoutMs: config.dbTimeoutMs, max: config.dbPoolSize })
      : openSqlite(config.dbPath);
  } catch (err) {
    const where = config.databaseUrl ? hidePassword(config.databaseUrl) : config.dbPath;
    process.stderr.write(
      `aviary: ${config.databaseUrl ? `cannot open the database ${where}: ${(err as Error).message}` : bootFailure(where, err)}\n`,
    );
    process.exit(err instanceof DatabaseLockedError ? 3 : 1);
  }
  const app = await buildApp({
    store,
    replica: { pollMs: config.replicaPollMs },
    ...(config.adminToken ? { adminToken: config.adminToken } : {}),
    sdkKeys: config.sdkKeys,
    logger: loggerOptions(config.logLevel),
    trustProxy: config.trustProxy,
    authFailures: config.authFailures,
    slowRequestMs: config.slowRequestMs,
    stream: { hydrationsPerMinute: config.hydrations.perMinute, hydrationBurst: config.hydrations.burst },
    metrics: {
      retentionDays: config.metricsRetentionDays,
      reportLimits: config.metricsLimits,
      keyQuotas: config.metricsLimits,
    },
    ...(config.evaluationMsPerSecond !== undefined ? { evaluationTime: { msPerSecond: config.evaluationMsPerSecond } } : {}),
    ...(config.oidc ? { oidc: config.oidc } : {}),
  });
  if (app.boot.generatedAdminToken) {
    // Printed once, on the boot that created it, outside the structured log so it never lands in log storage.
    process.stdout.write(
      `\nAviary created an admin token (shown only now; store it safely):\n\n  ${app.boot.generatedAdminToken}\n\n` +
        'Use it as "Authorization: Bearer <token>" on /api/v1. Set AVIARY_ADMIN_TOKEN to choose your own.\n\n',
    );
  }

  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down: draining in-flight requests');
    const timer = setTimeout(() => {
      app.log.error('drain timed out; closing the database and exiting');
      void store.close().finally(() => process.exit(1));
    }, config.shutdownTimeoutMs);
    timer.unref();
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        app.log.error({ err }, 'error while closing');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  const address = await app.listen({ host: config.host, port: config.port });
  app.log.info({ address, db: config.databaseUrl ? hidePassword(config.databaseUrl) : config.dbPath }, 'aviary listening');
}

/** Why the database at `path` could not be opened, in words an operator can act on (the file is always named). */
function bootFailure(path: string, err: unknown): string {
  if (err instanceof DatabaseLockedError) return err.message;
  const code = (err as { code?: string }).code ?? '';
  const message = err instanceof Error ? err.message : String(err);
  const cause =
    code === 'SQLITE_CANTOPEN' || code === 'EACCES' || code === 'EROFS'
      ? 'check that the directory exists and this user may write there (AVIARY_DB)'
      : code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT'
        ? 'the file is not an Aviary database or is damaged: restore it from a backup (docs/operations.md)'
        : code === 'SQLITE_FULL' || code === 'ENOSPC'
          ? 'the disk is full'
          : 'see the error above';
  return `cannot open the database ${path}: ${message} (${code || 'error'}); ${cause}`;
}

main().catch((err: unknown) => {
  process.stderr.write(`aviary: failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
