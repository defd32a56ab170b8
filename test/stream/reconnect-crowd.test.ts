/**
 * A crowd of SDKs loses its server (SIGKILL: no goodbye) and gets it back on the same port and database: every SDK
 * serves a change made right after the restart within 5 s, and the reconnects are spread over a few seconds, neither
 * all at once nor over a quarter of a minute. Default SDK options and the server's default configuration (its
 * per-key-and-address snapshot limit included: all 200 SDKs come from 127.0.0.1 with one key, and the boot after an
 * unclean stop makes every one of them take a snapshot). `npm run bench:reconnect` does the same with 1,000.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient } from '@aviary/sdk';
import { booleanFlag, setState, until } from './fixtures.js';
import { freePort, startServerProcess, type ServerProcess } from './server-process.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const N = 200;

describe('a crowd of SDKs after their server is killed and restarted', () => {
  it('every SDK serves a change within 5 s of the restart, and the reconnects are spread out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aviary-crowd-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const dbPath = join(dir, 'aviary.db');
    let proc: ServerProcess = await startServerProcess(port, dbPath);
    cleanups.push(() => proc.crash());
    const admin = { url: proc.url, adminToken: proc.adminToken };
    await booleanFlag(admin, 'f');

    const clients: AviaryClient[] = Array.from({ length: N }, () => createClient({ baseUrl: proc.url, sdkKey: proc.sdkKey, flushIntervalMs: 0 }));
    cleanups.push(() => Promise.all(clients.map((c) => c.close())));
    await Promise.all(clients.map((c) => c.ready(20_000)));
    const lost: number[] = [];
    const back: number[] = [];
    const current: number[] = [];
    clients.forEach((c, i) => {
      const check = () => {
        if (current[i] === undefined && c.variation('f', { key: 'u' }, true) === false) current[i] = performance.now();
      };
      c.on('stale', () => (lost[i] ??= performance.now()));
      c.on('ready', () => {
        if (lost[i] !== undefined) back[i] ??= performance.now();
        check();
      });
      c.on('change', check);
    });

    const killedAt = performance.now();
    await proc.crash();
    proc = await startServerProcess(port, dbPath);
    const upAt = performance.now();
    await setState(admin, 'f', 'production', { enabled: false, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } });
    await until(() => current.filter((t) => t !== undefined).length === N, 'every SDK serving the change', 15_000);

    const toCurrent = current.map((t) => t - upAt).sort((a, b) => a - b);
    const arrivals = back.map((t) => t - upAt).sort((a, b) => a - b);
    let busiest = 0;
    for (let i = 0, j = 0; i < arrivals.length; i++) {
      while (arrivals[i]! - arrivals[j]! > 100) j++;
      busiest = Math.max(busiest, i - j + 1);
    }
    const spread = arrivals[Math.floor(N * 0.9)]! - arrivals[Math.floor(N * 0.1)]!;
    console.log(
      `reconnect crowd: ${N} SDKs, server down ${(upAt - killedAt).toFixed(0)} ms; time-to-current after the restart ` +
        `p50 ${toCurrent[N / 2]!.toFixed(0)} ms, max ${toCurrent.at(-1)!.toFixed(0)} ms; reconnects p10–p90 ${spread.toFixed(0)} ms, ` +
        `busiest 100 ms ${busiest}, last ${arrivals.at(-1)!.toFixed(0)} ms after the server was back`,
    );
    expect(lost.filter((t) => t !== undefined)).toHaveLength(N);
    expect(arrivals).toHaveLength(N);
    // Current within 5 s of the server being back (the change was made at once).
    expect(toCurrent.at(-1)).toBeLessThan(5_000);
    // Spread: not all in one 100 ms (a quarter of the crowd at most), the middle 80% over at least half a second.
    expect(busiest).toBeLessThanOrEqual(N / 4);
    expect(spread).toBeGreaterThan(500);
  }, 60_000);
});
