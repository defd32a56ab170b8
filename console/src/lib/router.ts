/**
 * A tiny history router: the console has a handful of pages, so a path match beats a dependency. Links are real
 * `<a href>` elements (open in new tab, keyboard and screen readers work); `navigate` intercepts same-origin clicks.
 */
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'flags' }
  | { page: 'flag'; key: string }
  | { page: 'canary'; key: string }
  | { page: 'audit' }
  | { page: 'segments' }
  | { page: 'tokens' }
  | { page: 'change-requests' }
  | { page: 'webhooks' }
  | { page: 'not-found' };

export function parseRoute(path: string): Route {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: 'flags' };
  if (parts[0] === 'flags' && parts.length === 1) return { page: 'flags' };
  if (parts[0] === 'flags' && parts.length === 2) return { page: 'flag', key: parts[1]! };
  if (parts[0] === 'flags' && parts.length === 3 && parts[2] === 'canary') return { page: 'canary', key: parts[1]! };
  if (
    parts.length === 1 &&
    (parts[0] === 'audit' || parts[0] === 'segments' || parts[0] === 'tokens' || parts[0] === 'change-requests' || parts[0] === 'webhooks')
  )
    return { page: parts[0] };
  return { page: 'not-found' };
}

const listeners = new Set<() => void>();

export function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, '', to);
  for (const l of listeners) l();
  window.scrollTo(0, 0);
}

export function useRoute(): Route {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return parseRoute(path);
}

/** Click handler for in-app links: plain left clicks navigate without a reload; modified clicks behave natively. */
export function onLinkClick(e: MouseEvent): void {
  const a = (e.currentTarget as HTMLAnchorElement | null) ?? null;
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href') ?? '/');
}

export const flagPath = (key: string) => `/flags/${encodeURIComponent(key)}`;
export const canaryPath = (key: string) => `/flags/${encodeURIComponent(key)}/canary`;
