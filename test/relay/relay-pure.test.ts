/**
 * The relay's pure pieces: the `sdks` report parser (hostile input for the upstream), the relay state (deltas in
 * order, gaps refused, keys learned and revoked with their streams), and the SDK ignoring change kinds it does not know.
 */
import { hash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StreamKey } from '@aviary/sdk/core';
import { parseClientMessage, parseServerMessage, parseSdks, SDKS_MESSAGE_LIMITS } from '@aviary/sdk/protocol';
import { applyChanges, compileEnvironment } from '@aviary/sdk/core';
import { readRelayConfig } from '../../server/config.js';
import { readCached, readScope, writeCached, writeScope } from '../../server/relay/disk-cache.js';
import { RelayState } from '../../server/relay/relay-state.js';
import { ChangeFeed } from '../../server/storage/change-feed.js';

const entry = (id: string, via: string[] = []) => ({ id, sdkVersion: '1.0.0', appliedVersion: 3, appliedAt: 1000, connectedAt: 900, via });

describe('sdks report parser', () => {
  it('accepts a bounded report and keeps only known fields', () => {
    const r = parseClientMessage(
      JSON.stringify({ type: 'sdks', upsert: [{ ...entry('a', ['leaf']), extra: 'x', app: { name: 'shop', evil: 1 } }], remove: ['b'] }),
    );
    expect(r).toEqual({ ok: true, message: { type: 'sdks', upsert: [{ ...entry('a', ['leaf']), app: { name: 'shop' } }], remove: ['b'] } });
  });

  it('accepts reports over the 4 KB client message bound up to its own byte bound', () => {
    const upsert = Array.from({ length: 40 }, (_, i) => entry(`sdk-${i}`.padEnd(100, 'x')));
    const text = JSON.stringify({ type: 'sdks', upsert, remove: [] });
    expect(text.length).toBeGreaterThan(4096);
    expect(parseClientMessage(text).ok).toBe(true);
    expect(parseClientMessage(JSON.stringify({ type: 'hello', sdkId: 'x'.repeat(5000), sdkVersion: '1' }))).toEqual({
      ok: false,
      error: 'message too large',
    });
  });

  it.each([
    ['too many entries', { type: 'sdks', upsert: Array.from({ length: SDKS_MESSAGE_LIMITS.entries + 1 }, (_, i) => entry(String(i))), remove: [] }],
    ['a via too long', { type: 'sdks', upsert: [entry('a', Array(SDKS_MESSAGE_LIMITS.via + 1).fill('r'))], remove: [] }],
    ['a version that is not one', { type: 'sdks', upsert: [{ ...entry('a'), appliedVersion: -1 }], remove: [] }],
    ['an empty id', { type: 'sdks', upsert: [entry('')], remove: [] }],
    ['a removal that is not an id', { type: 'sdks', upsert: [], remove: [42] }],
    ['no arrays', { type: 'sdks' }],
  ])('refuses %s', (_what, message) => {
    expect(parseSdks(JSON.stringify(message)).ok).toBe(false);
  });

  it('refuses more bytes than its bound', () => {
    expect(parseSdks(`{"type":"sdks","upsert":[],"remove":[],"pad":"${'x'.repeat(SDKS_MESSAGE_LIMITS.bytes)}"}`).ok).toBe(false);
  });
});

const key = (id: string, secret: string, over: Partial<StreamKey> = {}): StreamKey => ({
  id,
  kind: 'sdk',
  hash: hash('sha256', secret, 'hex'),
  name: id,
  clientSide: false,
  expiresAt: null,
  environments: ['production'],
  ...over,
});
const snapshot = (version: number) => ({ environment: 'production', version, flags: [], segments: [] });

describe('relay state', () => {
  it('applies deltas in order, refuses a gap, and keeps a bounded log for resumes', () => {
    const feed = new ChangeFeed();
    const changes: number[] = [];
    feed.on('change', ({ delta }) => changes.push(delta.version));
    const st = new RelayState(feed, 2);
    st.hydrate(snapshot(5), [], 'cache');
    expect(st.source('production')).toBe('cache');
    expect(st.apply('production', { version: 6, changes: [] }, 5)).toBe('applied');
    expect(st.source('production')).toBe('upstream');
    expect(st.apply('production', { version: 8, changes: [] }, 7)).toBe('gap');
    expect(st.apply('production', { version: 6, changes: [] }, 5)).toBe('old');
    expect(st.apply('production', { version: 7, changes: [] }, 6)).toBe('applied');
    expect(st.apply('production', { version: 8, changes: [] }, 7)).toBe('applied');
    expect(changes).toEqual([6, 7, 8]);
    expect(st.changesSince('production', 6)?.map((d) => d.version)).toEqual([7, 8]);
    expect(st.changesSince('production', 5)).toBeNull(); // older than its log: a snapshot
    expect(st.changesSince('production', 9)).toBeNull(); // from the future: a snapshot
  });

  it('checks keys by hash, expires them, and revokes a deleted key (its streams close) once no environment holds it', () => {
    const feed = new ChangeFeed();
    const revoked: string[] = [];
    feed.on('token.revoked', ({ tokenId }) => revoked.push(tokenId));
    let now = 1000;
    const st = new RelayState(feed, 10, () => now);
    st.hydrate(snapshot(1), [key('k1', 'secret-one'), key('k2', 'secret-two', { expiresAt: 2000 })], 'upstream');
    st.hydrate({ ...snapshot(1), environment: 'staging' }, [key('r', 'relay-secret', { kind: 'relay', environments: null })], 'upstream');
    expect(st.authenticate('secret-one')).toMatchObject({ id: 'k1', kind: 'sdk', environment: 'production' });
    expect(st.authenticate('secret-two')).toMatchObject({ id: 'k2' });
    expect(st.authenticate('relay-secret')).toMatchObject({ kind: 'relay', environments: null });
    expect(st.authenticate('nope')).toBeNull();
    now = 2000;
    expect(st.authenticate('secret-two')).toBeNull();
    st.apply('production', { version: 2, changes: [{ type: 'key.delete', id: 'k1' }] }, 1);
    expect(revoked).toEqual(['k1']);
    expect(st.authenticate('secret-one')).toBeNull();
    expect(st.isRevoked('secret-one')).toBe(true);
    expect(st.keys('production').map((k) => k.id)).toEqual(['k2']);
    // The OFREP ticket is the server's: an HMAC keyed by the stored hash.
    expect(st.eventsTicket('k2')).toMatch(/^k2\./);
    expect(st.authenticateTicket(st.eventsTicket('k2')!)).toMatchObject({ id: 'k2' });
  });
});

describe('the SDK and change kinds it does not know', () => {
  it('parses a delta carrying key changes and applies only what it knows', () => {
    const flag = {
      key: 'f',
      kind: 'boolean',
      variants: [
        { key: 'on', value: true },
        { key: 'off', value: false },
      ],
      state: { enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } },
    };
    const text = JSON.stringify({
      type: 'delta',
      version: 2,
      prev: 1,
      changes: [
        { type: 'key.delete', id: 'k' },
        { type: 'flag.upsert', flag },
        { type: 'something.new', x: 1 },
      ],
    });
    const parsed = parseServerMessage(text);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok || parsed.message.type !== 'delta') return;
    const env = applyChanges(compileEnvironment({ environment: 'production', version: 1, flags: [], segments: [] }), parsed.message.changes, 2);
    expect([...env.flags.keys()]).toEqual(['f']);
    expect(env.version).toBe(2);
    // A malformed known change is still refused (the client resyncs).
    expect(parseServerMessage(JSON.stringify({ type: 'delta', version: 2, prev: 1, changes: [{ type: 'flag.delete' }] })).ok).toBe(false);
  });
});

describe('relay configuration and disk cache', () => {
  it('reads AVIARY_UPSTREAM, AVIARY_RELAY_TOKEN and AVIARY_RELAY_CACHE, naming a bad variable', () => {
    const ok = readRelayConfig({ AVIARY_UPSTREAM: 'http://core:4242/', AVIARY_RELAY_TOKEN: 'avi_relay_0123456789abcdef', AVIARY_PORT: '4300' });
    expect(ok).toMatchObject({ upstream: 'http://core:4242', cacheDir: './data/relay', host: '127.0.0.1', port: 4300 });
    expect(
      readRelayConfig({ AVIARY_UPSTREAM: 'https://x', AVIARY_RELAY_TOKEN: 'avi_relay_0123456789abcdef', AVIARY_RELAY_CACHE: '/var/cache/r' })
        .cacheDir,
    ).toBe('/var/cache/r');
    expect(() => readRelayConfig({ AVIARY_RELAY_TOKEN: 'avi_relay_0123456789abcdef' })).toThrow(/AVIARY_UPSTREAM/);
    expect(() => readRelayConfig({ AVIARY_UPSTREAM: 'ftp://x', AVIARY_RELAY_TOKEN: 'avi_relay_0123456789abcdef' })).toThrow(/AVIARY_UPSTREAM/);
    expect(() => readRelayConfig({ AVIARY_UPSTREAM: 'http://x' })).toThrow(/AVIARY_RELAY_TOKEN/);
  });

  it('writes snapshots atomically (no temp file left), reads them back, and skips a damaged file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aviary-relay-cache-'));
    try {
      const k = key('k1', 'secret');
      await writeCached(dir, { snapshot: { ...snapshot(7) }, keys: [k], savedAt: 5 });
      await writeCached(dir, { snapshot: { ...snapshot(8) }, keys: [k], savedAt: 6 });
      writeFileSync(join(dir, 'staging.snapshot.json'), '{"format":1,"snapsh');
      expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      const damaged: string[] = [];
      const read = await readCached(dir, (file) => damaged.push(file));
      expect(read).toEqual([{ snapshot: snapshot(8), keys: [k], savedAt: 6 }]);
      expect(damaged).toEqual(['staging.snapshot.json']);
      await writeScope(dir, { name: 'edge', environments: ['production'] });
      expect(await readScope(dir)).toEqual({ name: 'edge', environments: ['production'] });
      expect(await readScope(join(dir, 'missing'))).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
