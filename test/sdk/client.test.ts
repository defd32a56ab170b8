import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, type AviaryClient, type ClientOptions, type PatternEngine } from '@aviary/sdk';
import { lazyDfa } from '@aviary/sdk/core';
import { defaultPatternEngine as browserDefault } from '../../sdk/websocket-browser.js';
import { defaultPatternEngine as nodeDefault } from '../../sdk/websocket.js';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { booleanFlag, setState, until } from '../stream/fixtures.js';
import { freePort } from '../stream/server-process.js';
import { reportSink } from './reports.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function client(options: ClientOptions): AviaryClient {
  const c = createClient({ flushIntervalMs: 0, ...options });
  cleanups.push(() => c.close());
  return c;
}

async function server(): Promise<TestServer> {
  const srv = await startServer();
  cleanups.push(() => srv.close());
  return srv;
}

describe('createClient', () => {
  it('before the first snapshot serves the default with ERROR/NOT_READY, and ready() rejects on timeout', async () => {
    const port = await freePort();
    const c = client({ baseUrl: `http://127.0.0.1:${port}`, sdkKey: 'k', backoff: { initialMs: 50, maxMs: 100 } });
    expect(c.variationDetail('checkout', { key: 'u' }, true)).toEqual({
      value: true,
      reason: { kind: 'ERROR', errorCode: 'NOT_READY' },
      errorCode: 'NOT_READY',
    });
    const t0 = Date.now();
    await expect(c.ready(150)).rejects.toThrow(/not ready after 150 ms/);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(c.variation('checkout', { key: 'u' }, 'fallback')).toBe('fallback');
    expect(c.allFlags({ key: 'u' })).toEqual({});
  });

  it('becomes ready when a server shows up later (retrying meanwhile)', async () => {
    const srv = await server();
    await booleanFlag(srv, 'late');
    const port = Number(new URL(srv.url).port);
    await srv.app.close();
    const c = client({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, backoff: { initialMs: 50, maxMs: 100 } });
    await new Promise((r) => setTimeout(r, 200));
    expect(c.status().ready).toBe(false);
    const { buildApp } = await import('../../server/app.js');
    const app = await buildApp({ dbPath: srv.dbPath, adminToken: srv.adminToken, sdkKeys: srv.sdkKeys });
    cleanups.push(() => app.close());
    await app.listen({ port, host: '127.0.0.1' });
    await c.ready(5_000);
    expect(c.variation('late', { key: 'u' }, false)).toBe(true);
  });

  it("takes the expected kind from the default's type: another kind answers the default with WRONG_TYPE", async () => {
    const srv = await server();
    await booleanFlag(srv, 'bool-flag');
    expect(
      (
        await api(srv).post('/api/v1/flags', {
          key: 'copy',
          kind: 'string',
          variants: [
            { key: 'a', value: 'Buy now' },
            { key: 'b', value: 'Order' },
          ],
        })
      ).status,
    ).toBe(201);
    await setState(srv, 'copy', 'production', {
      enabled: true,
      offVariant: 'a',
      targets: [{ variant: 'b', keys: ['vip'] }],
      rules: [],
      fallthrough: { variant: 'a' },
    });
    const c = client({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production });
    await c.ready();
    const s: string = c.variation('copy', { key: 'vip' }, 'default');
    expect(s).toBe('Order');
    expect(c.variationDetail('copy', { key: 'x' }, 'd')).toMatchObject({ value: 'Buy now', variant: 'a', reason: { kind: 'FALLTHROUGH' } });
    expect(c.variationDetail('copy', { key: 'vip' }, false)).toMatchObject({ value: false, reason: { kind: 'ERROR', errorCode: 'WRONG_TYPE' } });
    expect(c.variationDetail('bool-flag', { key: 'x' }, 0)).toMatchObject({ value: 0, reason: { kind: 'ERROR', errorCode: 'WRONG_TYPE' } });
    expect(c.variationDetail('missing', { key: 'x' }, 7)).toMatchObject({ value: 7, reason: { kind: 'ERROR', errorCode: 'FLAG_NOT_FOUND' } });
    const all = c.allFlags({ key: 'vip' });
    expect(Object.keys(all).sort()).toEqual(['bool-flag', 'copy']);
    expect(all.copy).toMatchObject({ value: 'Order', variant: 'b', reason: { kind: 'TARGET_MATCH' } });
  });

  it('evaluation never throws into the application, whatever it is given', async () => {
    const srv = await server();
    await booleanFlag(srv, 'f');
    const c = client({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production });
    await c.ready();
    const weird = [null, undefined, 42, 'str', { key: 5 }, { key: 'u', plan: { nested: true } }] as unknown[];
    for (const ctx of weird) {
      expect(() => c.variation('f', ctx as never, false)).not.toThrow();
      expect(() => c.track('f', ctx as never, { error: true })).not.toThrow();
    }
    expect(() => c.variation(undefined as never, { key: 'u' }, false)).not.toThrow();
    const boom = () => {
      throw new Error('listener bug');
    };
    c.on('change', boom);
    expect(c.variation('f', { key: 'u' }, false)).toBe(true);
  });

  it('serves a bootstrap snapshot at once and resumes the stream from its version', async () => {
    const srv = await server();
    await booleanFlag(srv, 'boot');
    const first = client({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production });
    await first.ready();
    const snapshot = first.snapshot()!;
    const resumesBefore = srv.app.streamHub.stats.resumes;

    const c = client({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, bootstrap: snapshot });
    expect(c.variationDetail('boot', { key: 'u' }, false)).toMatchObject({ value: true, reason: { kind: 'FALLTHROUGH' } });
    await c.ready(0);
    await until(() => c.status().connected, 'the stream');
    expect(srv.app.streamHub.stats.resumes).toBe(resumesBefore + 1);
  });

  it('offline: serves the bootstrap (or defaults) and touches no network', async () => {
    const sink = await reportSink();
    cleanups.push(() => sink.close());
    const snapshot = {
      environment: 'production',
      version: 3,
      flags: [
        {
          key: 'f',
          kind: 'boolean' as const,
          variants: [
            { key: 'on', value: true },
            { key: 'off', value: false },
          ],
          state: { enabled: false, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' }, version: 1 },
        },
      ],
      segments: [],
    };
    const c = client({ baseUrl: sink.url, sdkKey: 'k', offline: true, bootstrap: snapshot });
    await c.ready(0);
    expect(c.variationDetail('f', { key: 'u' }, true)).toMatchObject({ value: false, reason: { kind: 'OFF' } });
    expect(await c.flush()).toBe(true);
    expect(c.status().stream).toBeNull();
    expect(sink.received).toEqual([]);

    const bare = client({ baseUrl: sink.url, sdkKey: 'k', offline: true });
    await bare.ready(0);
    expect(bare.variationDetail('f', { key: 'u' }, true)).toMatchObject({ value: true, reason: { kind: 'ERROR', errorCode: 'FLAG_NOT_FOUND' } });
  });

  it('compiles `matches` with the pattern engine its options name, in the bootstrap and in streamed changes', async () => {
    const srv = await server();
    const matchesState = (pattern: string) => ({
      enabled: true,
      offVariant: 'off',
      targets: [],
      rules: [{ id: 'staff', conditions: [{ attribute: 'email', op: 'matches', values: [pattern] }], serve: { variant: 'on' } }],
      fallthrough: { variant: 'off' },
    });
    await booleanFlag(srv, 'staff');
    await setState(srv, 'staff', 'production', matchesState('@acme\\.com$'));
    const first = client({ baseUrl: srv.url, sdkKey: srv.sdkKeys.production, WebSocket: WebSocket as never });
    await first.ready();

    // Answers "matches" to everything (so its use shows) and records every program it is handed.
    const programs: number[] = [];
    const liar: PatternEngine = (p) => {
      programs.push(p.prog.length);
      return () => true;
    };
    // An injected WebSocket, as a Node app may bring: the engine comes from the options, not from how it connects.
    const c = client({
      baseUrl: srv.url,
      sdkKey: srv.sdkKeys.production,
      WebSocket: WebSocket as never,
      bootstrap: first.snapshot()!,
      patternEngine: liar,
    });
    expect(programs).toHaveLength(1);
    expect(c.variation('staff', { key: 'u', email: 'eve@evil.example' }, false)).toBe(true);
    await until(() => c.status().connected, 'the stream');

    const changed = new Promise<string[]>((resolve) => c.on('change', resolve));
    await setState(srv, 'staff', 'production', matchesState('^nobody$'));
    expect(await changed).toEqual(['staff']);
    expect(programs).toHaveLength(2);
    expect(c.variation('staff', { key: 'u', email: 'eve@evil.example' }, false)).toBe(true);
    expect(first.variation('staff', { key: 'u', email: 'eve@evil.example' }, false)).toBe(false);
  });

  it('runs `matches` on the lazy DFA on Node unless told otherwise, and on the Pike VM alone in the browser build', () => {
    expect(nodeDefault).toBe(lazyDfa);
    expect(browserDefault).toBeUndefined();
  });

  it('rejects missing options with a TypeError', () => {
    expect(() => createClient({} as never)).toThrow(TypeError);
  });
});
