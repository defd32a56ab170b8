import { describe, expect, it } from 'vitest';
import { readConfig } from '../../server/config.js';

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

  it('refuses a bad port, a short admin token and a bad shutdown timeout, naming the variable', () => {
    expect(() => readConfig({ AVIARY_PORT: 'http' })).toThrow(/AVIARY_PORT/);
    expect(() => readConfig({ AVIARY_PORT: '70000' })).toThrow(/AVIARY_PORT/);
    expect(() => readConfig({ AVIARY_ADMIN_TOKEN: 'short' })).toThrow(/AVIARY_ADMIN_TOKEN/);
    expect(() => readConfig({ AVIARY_SHUTDOWN_TIMEOUT_MS: 'soon' })).toThrow(/AVIARY_SHUTDOWN_TIMEOUT_MS/);
  });
});
