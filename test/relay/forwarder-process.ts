/**
 * A MetricsForwarder in its own process, for the SIGKILL tests: it opens the journal in `FWD_DIR`, then accepts reports
 * of one SDK (`FWD_SDK_ID`, seq from `FWD_START`, `FWD_COUNT` of them, 1 evaluation each, 20 at a time so they share
 * group commits) and prints `ack <seq>` for each once `accept` resolved (durable). Then it flushes and prints `flushed`.
 */
import { MetricsForwarder } from '../../server/relay/metrics-forwarder.js';

const env = (name: string) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
};
const forwarder = await MetricsForwarder.open({
  dir: env('FWD_DIR'),
  upstream: env('FWD_UPSTREAM'),
  relayToken: env('FWD_TOKEN'),
  periodMs: 100,
  minBackoffMs: 50,
  maxBackoffMs: 400,
});
const start = Number(env('FWD_START'));
const count = Number(env('FWD_COUNT'));
const minute = Math.floor(Date.now() / 60_000) * 60_000;
const principal = { tokenId: env('FWD_KEY'), environment: env('FWD_ENV') };
for (let seq = start; seq < start + count; seq += 20) {
  const seqs = Array.from({ length: Math.min(20, start + count - seq) }, (_, i) => seq + i);
  await Promise.all(
    seqs.map(async (s) => {
      await forwarder.accept(principal, {
        sdkId: env('FWD_SDK_ID'),
        seq: s,
        sdk: { name: 'test', version: '0' },
        stats: [{ flag: 'checkout', variant: 'on', minute, evaluations: 1, outcomes: 0, errors: 0 }],
      });
      process.stdout.write(`ack ${s}\n`);
    }),
  );
}
await forwarder.flush(30_000);
process.stdout.write('flushed\n');
await forwarder.close();
