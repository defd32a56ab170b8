/**
 * Receipts across replicas (PostgreSQL). Each replica records the SDKs connected to it, per environment, in one row of
 * `replica_sdks` (replica, environment, sdks JSON, updated_at): written at most every `flushMs` while its SDKs change
 * (connect, acknowledge, leave) with a NOTIFY on `aviary_receipts`, and kept alive every `heartbeatMs` (1 s) by one
 * small UPDATE of its rows' time. Rows not
 * refreshed for `staleMs` (3.5 s) belong to a replica that is gone and are ignored (and deleted later), so a dead
 * replica's SDKs stop counting within seconds; an SDK listed by two replicas (it moved) counts once, where it is now.
 *
 * A kill receipt (`?waitMs=`) on any replica then counts its own SDKs from memory and the others' from their rows,
 * re-reading them on each notification, so the answer covers every SDK connected to the cluster. Cost per replica:
 * one upsert of its SDK list per change burst per environment (about 60 bytes per SDK), measured by bench:replicas.
 */
import type { StorePort } from '../storage/port.js';
import type { ConnectedSdkInfo, DeliveryReceipt, StreamHub } from '../stream/stream-hub.js';

export const RECEIPTS_CHANNEL = 'aviary_receipts';
const DB_NOW = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/** One SDK in a row: id, applied version (-1: none), applied at, connected at, SDK version, app name, app version. */
// The 8th member (relay path of an SDK behind relays, issue 13) is absent in rows written before it.
type Packed = [string, number, number, number, string, string | null, string | null, (string[] | null)?];

export interface PresenceOptions {
  flushMs?: number;
  heartbeatMs?: number;
  staleMs?: number;
  log?: { warn(obj: unknown, msg: string): void };
}

export class ClusterPresence {
  private readonly dirty = new Set<string>();
  /** Environments whose row this replica has written (and keeps alive with the heartbeat). */
  private readonly written = new Set<string>();
  private flushTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private readonly wakers = new Map<string, Set<() => void>>();
  private unlisten: (() => Promise<void>) | null = null;
  private readonly flushMs: number;
  private readonly heartbeatMs: number;
  private readonly staleMs: number;
  private stopped = false;
  /** Rows written (metrics and bench). */
  writes = 0;

  constructor(
    private readonly store: StorePort,
    private readonly hub: StreamHub,
    readonly replica: string,
    private readonly options: PresenceOptions = {},
  ) {
    this.flushMs = options.flushMs ?? 20;
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.staleMs = options.staleMs ?? 3500;
  }

  async start(): Promise<void> {
    this.hub.onActivity = (env) => this.markDirty(env);
    const sub = await this.store.listen(RECEIPTS_CHANNEL, (payload) => {
      const env = payload.slice(payload.indexOf(':') + 1);
      for (const wake of this.wakers.get(env) ?? []) wake();
    });
    this.unlisten = () => sub.unlisten();
    this.heartbeat = setInterval(() => void this.beat(), this.heartbeatMs);
    this.heartbeat.unref();
  }

  /**
   * Keeps this replica's rows alive with one small UPDATE (the lists are rewritten only when its SDKs change); rows
   * that went missing (removed as stale while the database was away) or failed to write are written again in full.
   */
  private async beat(): Promise<void> {
    if (this.stopped) return;
    try {
      const refreshed = await this.store.run(`UPDATE replica_sdks SET updated_at = ${DB_NOW} WHERE replica = ?`, [this.replica]);
      if (refreshed < this.written.size) for (const env of this.hub.environments()) this.dirty.add(env);
      // Rows of replicas that stopped refreshing them are gone for good.
      await this.store.run(`DELETE FROM replica_sdks WHERE updated_at < ${DB_NOW} - ?`, [this.staleMs * 4]);
    } catch {
      // The database is away: the rows are written again in full once it is back.
      for (const env of this.hub.environments()) this.dirty.add(env);
      this.written.clear();
    }
    if (this.dirty.size) this.schedule();
  }

  private markDirty(env: string): void {
    this.dirty.add(env);
    this.schedule();
  }

  private schedule(): void {
    if (this.flushTimer || this.stopped) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      if (this.flushing) return this.schedule();
      this.flushing = this.flush().finally(() => (this.flushing = null));
    }, this.flushMs);
    this.flushTimer.unref();
  }

  private async flush(): Promise<void> {
    const envs = [...this.dirty];
    this.dirty.clear();
    for (const env of envs) {
      const sdks: Packed[] = this.hub
        .list(env)
        .map((s) => [
          s.id,
          s.appliedVersion ?? -1,
          s.appliedAt ?? 0,
          s.connectedAt,
          s.sdk.version,
          s.app?.name ?? null,
          s.app?.version ?? null,
          s.via ?? null,
        ]);
      try {
        await this.store.transaction(async (tx) => {
          await tx.run(
            `INSERT INTO replica_sdks (replica, environment, sdks, updated_at) VALUES (?, ?, ?, ${DB_NOW})
             ON CONFLICT (replica, environment) DO UPDATE SET sdks = excluded.sdks, updated_at = excluded.updated_at`,
            [this.replica, env, JSON.stringify(sdks)],
          );
          await tx.notify(RECEIPTS_CHANNEL, `${this.replica}:${env}`);
        });
        this.writes++;
        this.written.add(env);
      } catch (err) {
        // The database is away: the next heartbeat writes the row again.
        this.dirty.add(env);
        this.written.delete(env);
        this.options.log?.warn({ err, environment: env }, 'cannot record connected SDKs');
      }
    }
  }

  /** The SDKs connected to the other live replicas (an SDK that moved between them: its newest connection). */
  async remote(env: string): Promise<ConnectedSdkInfo[]> {
    const rows = await this.store.all<{ sdks: string }>(
      `SELECT sdks FROM replica_sdks WHERE environment = ? AND replica <> ? AND updated_at > ${DB_NOW} - ?`,
      [env, this.replica, this.staleMs],
    );
    const byId = new Map<string, ConnectedSdkInfo>();
    for (const row of rows) {
      for (const [id, appliedVersion, appliedAt, connectedAt, sdkVersion, appName, appVersion, via] of JSON.parse(row.sdks) as Packed[]) {
        const info: ConnectedSdkInfo = {
          id,
          sdk: { name: '@aviary/sdk', version: sdkVersion },
          connectedAt,
          appliedVersion: appliedVersion >= 0 ? appliedVersion : null,
          appliedAt: appliedAt || null,
        };
        if (Array.isArray(via)) info.via = via;
        if (appName !== null || appVersion !== null)
          info.app = { ...(appName !== null ? { name: appName } : {}), ...(appVersion !== null ? { version: appVersion } : {}) };
        const seen = byId.get(id);
        if (!seen || seen.connectedAt < connectedAt) byId.set(id, info);
      }
    }
    return [...byId.values()];
  }

  /** This replica's SDKs and the others' that are not connected here (an SDK that moved here counts once). */
  private async all(env: string): Promise<{ local: ConnectedSdkInfo[]; remote: ConnectedSdkInfo[] }> {
    const local = this.hub.list(env);
    const here = new Set(local.map((s) => s.id));
    const remote = (await this.remote(env).catch(() => [] as ConnectedSdkInfo[])).filter((s) => !here.has(s.id));
    return { local, remote };
  }

  /** Every SDK connected to the cluster for `env`: this replica's, then the others'. */
  async list(env: string): Promise<ConnectedSdkInfo[]> {
    const { local, remote } = await this.all(env);
    return [...local, ...remote];
  }

  /** The receipt across replicas now. */
  async receipt(env: string, version: number): Promise<DeliveryReceipt> {
    const local = this.hub.receipt(env, version);
    const { remote } = await this.all(env);
    const { committedAt, latencies } = this.hub.latencies(env, version);
    const lat = [...latencies];
    let applied = local.applied;
    for (const s of remote) {
      if (s.appliedVersion === null || s.appliedVersion < version) continue;
      applied++;
      if (committedAt !== null && s.appliedAt !== null && s.appliedAt >= committedAt) lat.push(s.appliedAt - committedAt);
    }
    lat.sort((a, b) => a - b);
    const q = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.max(0, Math.ceil(p * lat.length) - 1))]! : null);
    const connected = local.connected + remote.length;
    const max = lat.length ? lat[lat.length - 1]! : null;
    return { ...local, connected, applied, complete: applied >= connected, p50Ms: q(0.5), p99Ms: q(0.99), maxMs: max, elapsedMs: max };
  }

  /** Waits up to `timeoutMs` for every SDK on every replica to apply `version`. */
  async waitFor(env: string, version: number, timeoutMs: number): Promise<DeliveryReceipt> {
    const deadline = Date.now() + timeoutMs;
    let receipt = await this.receipt(env, version);
    while (!receipt.complete && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        let wakers = this.wakers.get(env);
        if (!wakers) this.wakers.set(env, (wakers = new Set()));
        const done = () => {
          clearTimeout(timer);
          wakers.delete(done);
          resolve();
        };
        // Local acks arrive without a notification: look again every few ms as well.
        const timer = setTimeout(done, Math.min(25, Math.max(1, deadline - Date.now())));
        wakers.add(done);
      });
      receipt = await this.receipt(env, version);
    }
    return receipt;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.hub.onActivity = null;
    await this.flushing;
    await this.unlisten?.().catch(() => {});
    await this.store.run('DELETE FROM replica_sdks WHERE replica = ?', [this.replica]).catch(() => {});
  }
}
