import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, errorText } from './api.js';

/** Loads data with `load` whenever `deps` change; keeps showing the previous data while reloading (no flicker). */
export function useResource<T>(
  load: () => Promise<T>,
  deps: unknown[],
): { data: T | null; error: string | null; status: number | null; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<number | null>(null);
  const seq = useRef(0);
  const run = useCallback(() => {
    const n = ++seq.current;
    load().then(
      (d) => {
        if (n !== seq.current) return;
        setData(d);
        setError(null);
        setStatus(200);
      },
      (e) => {
        if (n !== seq.current) return;
        setError(errorText(e));
        setStatus(e instanceof ApiError ? e.status : null);
      },
    );
  }, deps);
  useEffect(run, [run]);
  return { data, error, status, reload: run };
}
