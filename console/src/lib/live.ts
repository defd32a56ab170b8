/**
 * Live updates by polling. Every 2 s the console asks for the newest audit entry and the environments' versions;
 * when either changed, `tick` increases and pages reload their data. Polling was chosen over the SDK stream because
 * it sees every kind of change (tokens and segments too, which the stream does not carry per environment), needs
 * only the admin token, and is simple to reason about during an incident; its cost is two small requests per 2 s.
 */
import { createContext } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from './api.js';
import type { AuditPage, Environment } from './types.js';

export const POLL_MS = 2000;

export interface LiveState {
  /** Increases whenever something changed on the server. */
  tick: number;
  /** Environments with their current versions. */
  environments: Environment[];
  /** When the last poll succeeded (epoch ms), or null. */
  lastOk: number | null;
  /** Why the last poll failed, or null. */
  error: string | null;
  /** Ask for a poll now (after the console itself changed something). */
  refresh(): void;
}

export const LiveContext = createContext<LiveState>({ tick: 0, environments: [], lastOk: null, error: null, refresh: () => {} });

export const useLive = () => useContext(LiveContext);

export function useLivePoller(enabled: boolean, onAuthFailure: () => void): LiveState {
  const [tick, setTick] = useState(0);
  const [environments, setEnvironments] = useState<Environment[]>([]);
  const [lastOk, setLastOk] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const fingerprint = useRef('');
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const poll = useRef<() => void>(() => {});

  useEffect(() => {
    if (!enabled) return;
    let stopped = false;
    poll.current = async () => {
      if (timer.current) clearTimeout(timer.current);
      try {
        const [envs, audit] = await Promise.all([
          api.get('/api/v1/environments'),
          api.get('/api/v1/audit', { params: { query: { limit: 1 } } }).catch((): AuditPage => ({ entries: [], nextCursor: null })),
        ]);
        if (stopped) return;
        const fp = JSON.stringify([envs.environments.map((e) => [e.key, e.version]), audit.entries[0]?.id ?? null]);
        if (fp !== fingerprint.current) {
          fingerprint.current = fp;
          setEnvironments(envs.environments);
          setTick((t) => t + 1);
        }
        setLastOk(Date.now());
        setError(null);
      } catch (e) {
        if (stopped) return;
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return onAuthFailure();
        setError(e instanceof Error ? e.message : String(e));
      }
      if (!stopped) timer.current = setTimeout(() => void poll.current(), POLL_MS);
    };
    void poll.current();
    return () => {
      stopped = true;
      if (timer.current) clearTimeout(timer.current);
    };
  }, [enabled]);

  return { tick, environments, lastOk, error, refresh: () => void poll.current() };
}
