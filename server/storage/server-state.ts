/**
 * Clean-stop bookkeeping and recovery after an unclean stop.
 *
 * Commits become visible (to the stream, to snapshot reads) as soon as they are in the WAL, and durable once the WAL
 * is fsynced, a few milliseconds later (wal-sync.ts). A power loss in between can therefore forget versions that
 * SDKs already applied; a database restored from a backup forgets more. Reusing those version numbers for different
 * changes would let such an SDK resume as if it were current. So when a boot finds that the previous process did
 * not stop cleanly, it moves every environment's version forward by a gap larger than anything that could have been
 * seen but lost: every SDK then finds its version missing from the change log and takes a fresh snapshot.
 */
import { apiTime } from '../openapi/time.js';
import { VERSION_GAP, type Writer } from './writer.js';
import type { StorePort } from './port.js';

/** Versions skipped after an unclean stop (more than the commits of any fsync window; see the file comment). */
export const UNCLEAN_STOP_VERSION_GAP = VERSION_GAP;

/**
 * Marks the database as in use; if it already was, applies the version gap (audited). Returns whether it did.
 * SQLite only: on PostgreSQL a commit is durable before it is acknowledged or streamed, and many replicas are "running"
 * at once, so there is nothing to recover.
 */
export async function markRunning(store: StorePort, writer: Writer, now: number): Promise<{ recovered: boolean }> {
  if (store.dialect !== 'sqlite') return { recovered: false };
  const read = 'SELECT value FROM server_state WHERE key = ?';
  const previous = await store.get<{ value: string }>(read, ['running']);
  // Set by `aviary restore` (backup.ts), beside 'running': the database was replaced by a backup.
  const restored = await store.get<{ value: string }>(read, ['restored_from']);
  const { value } = await writer.write({ tokenId: null, name: 'system' }, async (w) => {
    if (previous) {
      await w.tx.run('UPDATE environments SET version = version + ?', [UNCLEAN_STOP_VERSION_GAP]);
      w.audit({
        action: 'server.recover',
        resourceType: 'server',
        resourceKey: 'database',
        after: {
          versionGap: UNCLEAN_STOP_VERSION_GAP,
          previousStart: apiTime(Number(previous.value)),
          ...(restored ? { restoredFrom: JSON.parse(restored.value) as unknown } : {}),
        },
        reason: restored
          ? 'the database was restored from a backup; SDKs will resync from a snapshot'
          : 'the previous server process did not stop cleanly; SDKs will resync from a snapshot',
      });
      if (restored) await w.tx.run("DELETE FROM server_state WHERE key = 'restored_from'");
    }
    await w.tx.run("INSERT INTO server_state (key, value) VALUES ('running', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [
      String(now),
    ]);
    return { recovered: previous !== undefined };
  });
  return value;
}

/** Marks a clean stop (call after the last write, before closing the database). */
export async function markStopped(store: StorePort): Promise<void> {
  if (store.dialect !== 'sqlite') return;
  await store.run("DELETE FROM server_state WHERE key = 'running'");
}
