/**
 * The CLI side of relays: `aviary tokens create --kind relay --environments ...` prints a relay token, and
 * `aviary env sdks` shows the SDKs behind a relay with its path (VIA).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRelayApp } from '../../server/relay/relay-app.js';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { buildCli, removeCli, runCli } from '../cli/run-cli.js';

let srv: TestServer;
let relay: FastifyInstance | null = null;
let sdk: AviaryClient | null = null;
let env: Record<string, string>;
const dir = mkdtempSync(join(tmpdir(), 'aviary-relay-cli-'));

beforeAll(async () => {
  await buildCli();
  srv = await startServer();
  env = { AVIARY_URL: srv.url, AVIARY_TOKEN: srv.adminToken };
}, 60_000);
afterAll(async () => {
  await sdk?.close();
  await relay?.close();
  await srv?.close();
  removeCli();
  rmSync(dir, { recursive: true, force: true });
});

describe('aviary and relays', () => {
  it('creates a relay token for some environments, and lists the SDKs behind the relay with their path', async () => {
    const created = JSON.parse(
      (await runCli(['--json', 'tokens', 'create', '--kind', 'relay', '--name', 'edge-eu', '--environments', 'production'], env)).stdout,
    );
    expect(created).toMatchObject({ kind: 'relay', name: 'edge-eu', environments: ['production'] });
    expect(created.token).toMatch(/^avi_relay_/);
    const refused = await runCli(['tokens', 'create', '--kind', 'sdk', '--env', 'production', '--name', 'x', '--environments', 'production'], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--environments is for relay tokens/);

    relay = await buildRelayApp({ upstream: srv.url, token: created.token, cacheDir: join(dir, 'cache') });
    await relay.listen({ port: 0, host: '127.0.0.1' });
    const a = relay.server.address();
    sdk = createClient({
      baseUrl: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`,
      sdkKey: srv.sdkKeys.production,
      flushIntervalMs: 0,
    });
    await sdk.ready();
    const deadline = Date.now() + 10_000;
    while ((await api(srv).get('/api/v1/environments/production/sdks')).body.items.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    const out = (await runCli(['env', 'sdks', 'production'], env)).stdout;
    expect(out).toContain('VIA');
    expect(out).toContain(sdk.sdkId);
    expect(out).toMatch(/edge-eu/);
  }, 60_000);
});
