/**
 * `aviary relay` / `npm run relay` (CONTRACT §10): AVIARY_UPSTREAM, AVIARY_RELAY_TOKEN, AVIARY_RELAY_CACHE,
 * AVIARY_HOST/AVIARY_PORT → buildRelayApp → listen. SIGTERM says goodbye to its streams (as the server does), closes
 * the upstream links and waits for the cache writes.
 */
import { readRelayConfig, type RelayConfig } from '../config.js';
import { loggerOptions } from '../ops/logging.js';
import { buildRelayApp } from './relay-app.js';

async function main(): Promise<void> {
  let config: RelayConfig;
  try {
    config = readRelayConfig();
  } catch (err) {
    process.stderr.write(`aviary relay: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const app = await buildRelayApp({
    upstream: config.upstream,
    token: config.relayToken,
    cacheDir: config.cacheDir,
    logger: loggerOptions(config.logLevel),
    trustProxy: config.trustProxy,
    authFailures: config.authFailures,
    slowRequestMs: config.slowRequestMs,
    stream: { hydrationsPerMinute: config.hydrations.perMinute, hydrationBurst: config.hydrations.burst },
  });
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'relay shutting down');
    setTimeout(() => process.exit(1), config.shutdownTimeoutMs).unref();
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
  app.log.info({ address, upstream: config.upstream, environments: app.relay?.scope.environments }, 'aviary relay listening');
}

main().catch((err: unknown) => {
  process.stderr.write(`aviary relay: failed to start: ${(err as Error).message}\n`);
  process.exit(1);
});
