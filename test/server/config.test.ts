import { describe, expect, it } from 'vitest';
import { parseTrustProxy, readConfig } from '../../server/config.js';

describe('readConfig (CONTRACT §8)', () => {
  it('defaults to 127.0.0.1:4242 and ./data/aviary.db', () => {
    expect(readConfig({})).toMatchObject({ host: '127.0.0.1', port: 4242, dbPath: './data/aviary.db', sdkKeys: {} });
    expect(readConfig({}).adminToken).toBeUndefined();
  });

  it('reads host, port, database, admin token and one SDK key per AVIARY_SDK_KEY_<ENV>', () => {
    const config = readConfig({
      AVIARY_HOST: '0.0.0.0',
      AVIARY_PORT: '8080',
      AVIARY_DB: '/var/lib/aviary/db.sqlite',
      AVIARY_ADMIN_TOKEN: 'a-long-enough-admin-token',
      AVIARY_SDK_KEY_PRODUCTION: 'prod-key',
      AVIARY_SDK_KEY_EU_WEST: 'eu-key',
      AVIARY_SDK_KEY_STAGING: '',
    });
    expect(config).toMatchObject({ host: '0.0.0.0', port: 8080, dbPath: '/var/lib/aviary/db.sqlite', adminToken: 'a-long-enough-admin-token' });
    expect(config.sdkKeys).toEqual({ production: 'prod-key', 'eu-west': 'eu-key' });
  });

  it('reads the PostgreSQL settings (CONTRACT §9): the URL wins over AVIARY_DB; timeouts, poll and pool are positive numbers', () => {
    expect(readConfig({})).toMatchObject({ dbTimeoutMs: 5000, replicaPollMs: 2000, dbPoolSize: 10 });
    expect(readConfig({}).databaseUrl).toBeUndefined();
    const config = readConfig({
      AVIARY_DB: './x.db',
      AVIARY_DATABASE_URL: 'postgres://aviary:secret@db:5432/aviary',
      AVIARY_DB_TIMEOUT_MS: '1500',
      AVIARY_REPLICA_POLL_MS: '500',
      AVIARY_DB_POOL_SIZE: '4',
    });
    expect(config).toMatchObject({ databaseUrl: 'postgres://aviary:secret@db:5432/aviary', dbTimeoutMs: 1500, replicaPollMs: 500, dbPoolSize: 4 });
    expect(readConfig({ AVIARY_DATABASE_URL: 'postgresql://h/db' }).databaseUrl).toBe('postgresql://h/db');
    expect(() => readConfig({ AVIARY_DATABASE_URL: 'mysql://h/db' })).toThrow(/AVIARY_DATABASE_URL/);
    expect(() => readConfig({ AVIARY_DB_TIMEOUT_MS: '0' })).toThrow(/AVIARY_DB_TIMEOUT_MS/);
    expect(() => readConfig({ AVIARY_DB_POOL_SIZE: 'many' })).toThrow(/AVIARY_DB_POOL_SIZE/);
  });

  it('refuses a bad port, a short admin token and a bad shutdown timeout, naming the variable', () => {
    expect(() => readConfig({ AVIARY_PORT: 'http' })).toThrow(/AVIARY_PORT/);
    expect(() => readConfig({ AVIARY_PORT: '70000' })).toThrow(/AVIARY_PORT/);
    expect(() => readConfig({ AVIARY_ADMIN_TOKEN: 'short' })).toThrow(/AVIARY_ADMIN_TOKEN/);
    expect(() => readConfig({ AVIARY_SHUTDOWN_TIMEOUT_MS: 'soon' })).toThrow(/AVIARY_SHUTDOWN_TIMEOUT_MS/);
  });

  it('reads the operational limits, refusing what is not a positive number', () => {
    expect(readConfig({})).toMatchObject({
      slowRequestMs: 1000,
      authFailures: { limit: 30, windowMs: 60_000 },
      metricsRetentionDays: 30,
      trustProxy: false,
    });
    const config = readConfig({
      AVIARY_SLOW_REQUEST_MS: '250',
      AVIARY_AUTH_FAILURE_LIMIT: '5',
      AVIARY_AUTH_FAILURE_WINDOW_SECONDS: '10',
      AVIARY_METRICS_RETENTION_DAYS: '7',
    });
    expect(config).toMatchObject({ slowRequestMs: 250, authFailures: { limit: 5, windowMs: 10_000 }, metricsRetentionDays: 7 });
    expect(() => readConfig({ AVIARY_AUTH_FAILURE_LIMIT: 'lots' })).toThrow(/AVIARY_AUTH_FAILURE_LIMIT/);
    expect(() => readConfig({ AVIARY_METRICS_RETENTION_DAYS: '-1' })).toThrow(/AVIARY_METRICS_RETENTION_DAYS/);
    // SDK-key limits: only what is set, so the modules' defaults hold otherwise.
    expect(readConfig({}).metricsLimits).toEqual({});
    expect(readConfig({}).evaluationMsPerSecond).toBeUndefined();
    const limits = readConfig({
      AVIARY_METRICS_KEY_ROWS_PER_MINUTE: '1000',
      AVIARY_METRICS_MAX_FUTURE_SECONDS: '60',
      AVIARY_EVAL_MS_PER_SECOND: '250',
      AVIARY_STREAM_HYDRATION_BURST: '50',
    });
    expect(limits.metricsLimits).toEqual({ rowsPerMinute: 1000, maxFutureMs: 60_000 });
    expect(limits.evaluationMsPerSecond).toBe(250);
    expect(limits.hydrations).toEqual({ burst: 50, perMinute: 120 });
    expect(() => readConfig({ AVIARY_METRICS_MAX_ROW_COUNT: 'many' })).toThrow(/AVIARY_METRICS_MAX_ROW_COUNT/);
  });

  it('AVIARY_TRUST_PROXY names the proxies to trust, never every hop', () => {
    expect(parseTrustProxy(undefined)).toBe(false);
    expect(parseTrustProxy('false')).toBe(false);
    const one = parseTrustProxy('true') as (a: string, hop: number) => boolean;
    expect([one('10.0.0.1', 0), one('10.0.0.1', 1)]).toEqual([true, false]);
    const two = parseTrustProxy('2') as (a: string, hop: number) => boolean;
    expect([two('x', 0), two('x', 1), two('x', 2)]).toEqual([true, true, false]);
    expect(parseTrustProxy('10.0.0.1, 192.168.0.0/16,loopback')).toBe('10.0.0.1,192.168.0.0/16,loopback');
    expect(parseTrustProxy('::1,fd00::/8')).toBe('::1,fd00::/8');
    for (const bad of ['yes', '0', '17', '10.0.0.0/33', 'proxy.example', '10.0.0.1/8/2'])
      expect(() => parseTrustProxy(bad)).toThrow(/AVIARY_TRUST_PROXY/);
  });
});
