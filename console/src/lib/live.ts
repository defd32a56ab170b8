/**
 * Live updates by push. The console follows the server's admin event stream (`GET /api/v1/events`, server-sent
 * events read with `fetch`, which can send the token): every committed change of any environment, on any replica,
 * arrives within milliseconds, and `tick` increases so pages re-read their data. Heartbeats prove the server is there.
 *
 * Polling stays as the safety net: every 15 s while the stream is up (it also catches the writes the stream does not
 * announce: tokens, webhooks), and every 2 s while it is down, when the stream is retried with growing delays. When
 * neither answers, `error` says why and `stale` is set: the shell shows a banner and pages mark their numbers stale.
 */
import { createContext } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from './api.js';
import { getToken } from './session.js';
import type { AuditPage, Environment } from './types.js';

export const POLL_MS = 2000;
/** Polling while the push stream is up. */
export const SLOW_POLL_MS = 15_000;

export interface LiveState {
  /** Increases whenever something changed on the server. */
  tick: number;
  /** Environments with their current versions. */
  environments: Environment[];
  /** When the server last answered (a poll or a stream event; epoch ms), or null. */
  lastOk: number | null;
  /** Why the server cannot be reached, or null. */
  error: string | null;
  /** `push`: following the event stream; `poll`: polling (the stream is down); `offline`: nothing answers. */
  mode: 'push' | 'poll' | 'offline';
  /** Ask for a poll now (after the console itself changed something). */
  refresh(): void;
}

export const LiveContext = createContext<LiveState>({ tick: 0, environments: [], lastOk: null, error: null, mode: 'poll', refresh: () => {} });

export const useLive = () => useContext(LiveContext);

/** Splits server-sent events out of a text buffer; returns the complete frames and what is left. */
export function splitEvents(buffer: string): { frames: Array<{ event: string | null; data: string | null; comment: boolean }>; rest: string } {
  const frames: Array<{ event: string | null; data: string | null; comment: boolean }> = [];
  let rest = buffer.replaceAll('\r\n', '\n');
  let i: number;
  while ((i = rest.indexOf('\n\n')) >= 0) {
    const frame = rest.slice(0, i);
    rest = rest.slice(i + 2);
    let event: string | null = null;
    let data: string | null = null;
    for (const line of frame.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data = (data === null ? '' : `${data}\n`) + line.slice(5).trimStart();
    }
    frames.push({ event, data, comment: frame.startsWith(':') });
  }
  return { frames, rest };
}

export function useLivePoller(enabled: boolean, onAuthFailure: () => void): LiveState {
  const [tick, setTick] = useState(0);
  const [environments, setEnvironments] = useState<Environment[]>([]);
  const [lastOk, setLastOk] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [pushing, setPushing] = useState(false);
  const fingerprint = useRef('');
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const poll = useRef<() => void>(() => {});
  const pushingRef = useRef(false);

  useEffect(() => {
    if (!enabled) return;
    let stopped = false;
    let pollFailures = 0;

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
        pollFailures = 0;
        setLastOk(Date.now());
        setError(null);
      } catch (e) {
        if (stopped) return;
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return onAuthFailure();
        pollFailures++;
        // One failed poll while the stream still beats is a hiccup; otherwise the server is unreachable.
        if (!pushingRef.current || pollFailures > 1) setError(e instanceof Error ? e.message : String(e));
      }
      if (!stopped) timer.current = setTimeout(() => void poll.current(), pushingRef.current ? SLOW_POLL_MS : POLL_MS);
    };

    // The push stream, retried with growing delays while it fails.
    let controller: AbortController | null = null;
    let retryMs = 2000;
    let retry: ReturnType<typeof setTimeout> | null = null;
    let pending: ReturnType<typeof setTimeout> | null = null;
    const setPush = (on: boolean) => {
      pushingRef.current = on;
      setPushing(on);
    };
    const changed = () => {
      // Coalesce a burst (a panic kills many flags in one version per environment): one re-read.
      if (pending) return;
      pending = setTimeout(() => {
        pending = null;
        void poll.current();
      }, 30);
    };
    const follow = async () => {
      controller = new AbortController();
      const token = getToken();
      let watchdog: ReturnType<typeof setTimeout> | null = null;
      let heartbeatMs = 15_000;
      const arm = () => {
        if (watchdog) clearTimeout(watchdog);
        // Two heartbeats missed: the connection is gone even if TCP has not noticed.
        watchdog = setTimeout(() => controller?.abort(), 2 * heartbeatMs + 1000);
      };
      try {
        const res = await fetch('/api/v1/events', { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: controller.signal });
        if (res.status === 401 || res.status === 403) return onAuthFailure();
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        arm();
        for (;;) {
          const { value, done } = await reader.read();
          if (done || stopped) break;
          buffer += value;
          const { frames, rest } = splitEvents(buffer);
          buffer = rest;
          if (frames.length === 0) continue;
          arm();
          setLastOk(Date.now());
          setError(null);
          for (const f of frames) {
            if (f.event === 'hello') {
              try {
                heartbeatMs = (JSON.parse(f.data ?? '{}') as { heartbeatMs?: number }).heartbeatMs ?? heartbeatMs;
              } catch {
                /* keep the default */
              }
              setPush(true);
              retryMs = 2000;
              arm();
              changed();
            } else if (f.event === 'change' || f.event === 'reset') changed();
          }
        }
      } catch {
        // Aborted, refused or cut: fall back to polling below.
      } finally {
        if (watchdog) clearTimeout(watchdog);
      }
      if (stopped) return;
      setPush(false);
      // Poll at once (the stream's loss may be the server's), and try the stream again later.
      void poll.current();
      retry = setTimeout(() => void follow(), retryMs);
      retryMs = Math.min(retryMs * 2, 30_000);
    };

    void poll.current();
    void follow();
    return () => {
      stopped = true;
      controller?.abort();
      if (retry) clearTimeout(retry);
      if (pending) clearTimeout(pending);
      if (timer.current) clearTimeout(timer.current);
      setPush(false);
    };
  }, [enabled]);

  return {
    tick,
    environments,
    lastOk,
    error,
    mode: error ? 'offline' : pushing ? 'push' : 'poll',
    refresh: () => void poll.current(),
  };
}
