/**
 * Pages loaded when first opened: the incident path (sign in → flag list → kill, and the flag page) is the main bundle;
 * the canary page (with uPlot), the audit log, change requests, segments, tokens and webhooks are their own chunks.
 */
import type { ComponentType, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export function lazy<P extends object>(load: () => Promise<ComponentType<P>>): (props: P) => JSX.Element {
  let loaded: ComponentType<P> | null = null;
  let loading: Promise<ComponentType<P>> | null = null;
  return function Lazy(props: P) {
    const [Component, setComponent] = useState<ComponentType<P> | null>(() => loaded);
    const [error, setError] = useState<string | null>(null);
    useEffect(() => {
      if (Component) return;
      let stopped = false;
      loading ??= load().then((c) => (loaded = c));
      loading.then(
        (c) => !stopped && setComponent(() => c),
        (e: unknown) => {
          loading = null;
          if (!stopped) setError(e instanceof Error ? e.message : String(e));
        },
      );
      return () => {
        stopped = true;
      };
    }, []);
    if (error)
      return (
        <p class="error" role="alert">
          This page could not be loaded ({error}); reload to try again.
        </p>
      );
    return Component ? <Component {...props} /> : <p class="muted">Loading…</p>;
  };
}
