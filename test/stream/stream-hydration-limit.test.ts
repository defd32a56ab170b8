/**
 * A snapshot is the one large thing the stream sends, and a client asks for one with a few bytes (hello, resync). With
 * a public SDK key, a loop of reconnect-and-hello made the server send tens of thousands of times what it received.
 * Snapshots are bounded per SDK key and client address; a refused client is told when to come back (1013 +
 * retryAfterMs), resumes are never counted, and other keys are untouched.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { booleanFlag, RawStream, until } from './fixtures.js';

let srv: TestServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

async function helloUntilClosed(s: TestServer, key: string, lastVersion?: number): Promise<RawStream> {
  const raw = new RawStream(s, key);
  await raw.hello(lastVersion);
  await until(() => raw.messages.length > 0, 'a first message');
  return raw;
}

describe('snapshots per SDK key and address', () => {
  it('refuses the snapshot past the limit with 1013 and when to retry; resumes and other keys go on', async () => {
    let t = 1_000_000;
    srv = await startServer({ now: () => t, stream: { heartbeatMs: 5_000, hydrationBurst: 3, hydrationsPerMinute: 3 } });
    await booleanFlag(srv, 'checkout');
    const hydrated: RawStream[] = [];
    for (let i = 0; i < 3; i++) hydrated.push(await helloUntilClosed(srv, srv.sdkKeys.production));
    expect(hydrated.map((r) => r.messages[0]!.type)).toEqual(['hydrate', 'hydrate', 'hydrate']);
    const version = (hydrated[0]!.messages[0] as { version: number }).version;

    const refused = await helloUntilClosed(srv, srv.sdkKeys.production);
    expect(refused.messages[0]).toMatchObject({ type: 'error', code: 'too-many-hydrations', retryAfterMs: 20_000 });
    expect(await refused.closed).toBe(1013);
    // A resync on an open connection is a snapshot too, and counted the same.
    hydrated[0]!.send({ type: 'resync', reason: 'test' });
    expect(await hydrated[0]!.closed).toBe(1013);

    // Resuming from a version costs no snapshot and is never refused.
    const resumed = await helloUntilClosed(srv, srv.sdkKeys.production, version);
    expect(resumed.messages[0]).toMatchObject({ type: 'resumed', version });
    // Another key (another application) is not held back by this one.
    expect((await helloUntilClosed(srv, srv.sdkKeys.staging)).messages[0]!.type).toBe('hydrate');
    // The bucket refills: a third of a minute later, one more snapshot.
    t += 20_000;
    expect((await helloUntilClosed(srv, srv.sdkKeys.production)).messages[0]!.type).toBe('hydrate');
    for (const r of [...hydrated, resumed]) r.close();
  });

  it('a reconnect loop gets at most the limit of snapshots, whatever it sends', async () => {
    srv = await startServer({ stream: { heartbeatMs: 5_000, hydrationBurst: 10, hydrationsPerMinute: 10 } });
    await booleanFlag(srv, 'checkout');
    let snapshots = 0;
    for (let i = 0; i < 40; i++) {
      const raw = await helloUntilClosed(srv, srv.sdkKeys.production);
      if (raw.messages[0]!.type === 'hydrate') snapshots++;
      raw.close();
    }
    expect(snapshots).toBe(10);
  });
});
