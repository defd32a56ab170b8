/** The audit log, newest first: who changed what, when, why, with before and after. Filters and paging. */
import { useEffect, useState } from 'preact/hooks';
import { formatLocalTime, formatTime } from '@aviary/api-client';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { flagPath, onLinkClick } from '../lib/router.js';
import type { AuditEntry } from '../lib/types.js';

export function AuditPage({ environment }: { environment: string }) {
  const live = useLive();
  // What is typed, and the filter applied 300 ms after the typing stops: the page's refreshes re-render the table,
  // never the input (it is not bound to the applied filter), so nothing typed is erased.
  const [typed, setTyped] = useState('');
  const [flag, setFlag] = useState('');
  useEffect(() => {
    const t = setTimeout(() => setFlag(typed.trim()), 300);
    return () => clearTimeout(t);
  }, [typed]);
  const [onlyEnv, setOnlyEnv] = useState(false);
  const [items, setItems] = useState<AuditEntry[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const page = (cursor: string | null) =>
    api.get('/api/v1/audit', {
      params: {
        query: { limit: 50, ...(flag ? { search: flag } : {}), ...(onlyEnv ? { environment } : {}), ...(cursor ? { cursor } : {}) },
      },
    });

  useEffect(() => {
    let stopped = false;
    page(null).then(
      (p) => {
        if (stopped) return;
        setItems(p.entries);
        setCursor(p.nextCursor);
        setError(null);
      },
      (e) => !stopped && setError(errorText(e)),
    );
    return () => {
      stopped = true;
    };
  }, [flag, onlyEnv, environment, live.tick]);

  const more = async () => {
    try {
      const p = await page(cursor);
      setItems((xs) => [...xs, ...p.entries]);
      setCursor(p.nextCursor);
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <section aria-labelledby="audit-title">
      <div class="page-head">
        <h1 id="audit-title">Audit log</h1>
        <div class="row">
          <label>
            Flag or key contains{' '}
            <input
              type="search"
              defaultValue={typed}
              size={18}
              onInput={(e) => setTyped((e.currentTarget as HTMLInputElement).value)}
              placeholder="any"
            />
          </label>
          <label>
            <input type="checkbox" checked={onlyEnv} onChange={(e) => setOnlyEnv((e.currentTarget as HTMLInputElement).checked)} /> only {environment}
          </label>
        </div>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="table-wrap">
        <table class="audit">
          <caption class="sr-only">Audit log entries, newest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">What</th>
              <th scope="col">Where</th>
              <th scope="col">Why</th>
              <th scope="col">Change</th>
            </tr>
          </thead>
          <tbody>
            {items.map((e) => (
              <tr key={String(e.id)} data-action={e.action}>
                <td>
                  <time dateTime={formatTime(e.at)}>{formatLocalTime(e.at)}</time>
                </td>
                <td class="who">
                  <Who actor={e.actor} />
                </td>
                <td>
                  <code>{e.action}</code>
                </td>
                <td>
                  {e.resourceType === 'flag' || e.resourceType === 'flag-state' || e.resourceType === 'canary' ? (
                    <a href={flagPath(e.resourceKey)} onClick={onLinkClick}>
                      {e.resourceKey}
                    </a>
                  ) : (
                    <span>
                      {e.resourceType} {e.resourceKey}
                    </span>
                  )}
                  {e.environment && !(e.resourceType === 'environment' && e.resourceKey === e.environment) && (
                    <span class="muted"> in {e.environment}</span>
                  )}
                </td>
                <td>{e.reason ?? ''}</td>
                <td>
                  {(e.before !== undefined || e.after !== undefined) && (
                    <details>
                      <summary>
                        {summarize(e)}
                        <span class="sr-only">
                          {` of ${e.action} ${e.resourceKey}${e.environment && e.environment !== e.resourceKey ? ` in ${e.environment}` : ''}, ${formatLocalTime(e.at)}`}
                        </span>
                      </summary>
                      <Diff before={e.before} after={e.after} />
                    </details>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {items.length === 0 && !error && <p class="muted">No entries.</p>}
      {cursor && (
        <button type="button" onClick={more}>
          Load older entries
        </button>
      )}
    </section>
  );
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Before and after, reduced to the top-level fields that changed (whole documents for creates and deletes). */
function Diff({ before, after }: { before: unknown; after: unknown }) {
  let b = before ?? null;
  let a = after ?? null;
  if (isObj(b) && isObj(a)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter(
      (k) => JSON.stringify(a && (a as Obj)[k]) !== JSON.stringify((b as Obj)[k]),
    );
    b = Object.fromEntries(keys.map((k) => [k, (b as Obj)[k] ?? null]));
    a = Object.fromEntries(keys.map((k) => [k, (a as Obj)[k] ?? null]));
  }
  return (
    <div class="diff">
      <div>
        <h4>Before</h4>
        <pre>{JSON.stringify(b, null, 1)}</pre>
      </div>
      <div>
        <h4>After</h4>
        <pre>{JSON.stringify(a, null, 1)}</pre>
      </div>
    </div>
  );
}

/** The top-level fields that differ, so the row says what changed without opening it. */
function summarize(e: AuditEntry): string {
  const b = e.before,
    a = e.after;
  const list = (v: unknown) => (Array.isArray(v) ? v.map(String) : []);
  if (e.action === 'environment.kill-all' && isObj(a)) {
    const killed = list(a['killed']);
    const spared = list(a['spared']);
    return `killed ${killed.length} flag${killed.length === 1 ? '' : 's'}${killed.length ? `: ${killed.join(', ')}` : ''}${spared.length ? `; spared ${spared.join(', ')}` : ''}`;
  }
  if (e.action === 'environment.revive-all' && isObj(a)) {
    const revived = list(a['revived']);
    return `revived ${revived.length} flag${revived.length === 1 ? '' : 's'}${revived.length ? `: ${revived.join(', ')}` : ''}`;
  }
  // Only a create has nothing before it and only a delete nothing after; other actions record what they did.
  if ((b === null || b === undefined) && e.action.endsWith('.create')) return 'created';
  if ((a === null || a === undefined) && e.action.endsWith('.delete')) return 'deleted';
  if (b === null || b === undefined || a === null || a === undefined) return 'details';
  if (typeof a !== 'object' || typeof b !== 'object') return 'changed';
  const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
  const changed = [...keys].filter(
    (k) => k !== 'version' && JSON.stringify((a as Record<string, unknown>)[k]) !== JSON.stringify((b as Record<string, unknown>)[k]),
  );
  return changed.length ? changed.join(', ') : 'no change';
}

const KIND_LABEL: Record<AuditEntry['actor']['kind'], string> = {
  token: 'token',
  person: 'person',
  schedule: 'schedule',
  trigger: 'trigger',
  'canary-guard': 'canary guard',
  system: 'system',
};

/** Who made a change: the person (name, email, OpenID subject), or the token, schedule, trigger or canary guard. */
function Who({ actor }: { actor: AuditEntry['actor'] }) {
  if (actor.kind === 'person') {
    return (
      <span title={`OpenID Connect subject ${actor.subject ?? '?'}`}>
        {actor.name}
        {actor.email && actor.email !== actor.name && <span class="muted small"> {actor.email}</span>}
      </span>
    );
  }
  return (
    <span>
      {actor.name} <span class="badge">{KIND_LABEL[actor.kind]}</span>
    </span>
  );
}
