/**
 * Flag list: search, each flag's state in every environment, the kill switch for the selected environment, and, there,
 * which flags each one requires and is required by (CONTRACT §12: killing a flag turns off the flags that require it).
 */
import { useMemo, useState } from 'preact/hooks';
import { ConnectedSdks } from '../components/connected-sdks.js';
import { KillSwitch } from '../components/kill-switch.js';
import { NewFlagButton } from '../components/new-flag.js';
import { LIFECYCLE_STATUSES, LifecycleBadge, ReadyToRemove } from '../components/lifecycle.js';
import { formatLocalTime } from '@aviary/api-client';
import { api } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { flagPath, onLinkClick } from '../lib/router.js';
import type { EnvironmentSummary, Flag } from '../lib/types.js';
import { useResource } from '../lib/use-resource.js';

export function matchesSearch(f: Flag, q: string): boolean {
  if (!q) return true;
  const needle = q.toLowerCase();
  return [f.key, f.description, ...f.tags].some((s) => s.toLowerCase().includes(needle));
}

export function FlagsPage({ environment, environments }: { environment: string; environments: string[] }) {
  const live = useLive();
  const [q, setQ] = useState('');
  // Lifecycle (issue 16): the status filter (the API's ?status=) and the "Ready to remove" view.
  const [status, setStatus] = useState<'' | (typeof LIFECYCLE_STATUSES)[number]>('');
  const [view, setView] = useState<'all' | 'ready'>('all');
  // Archived flags (invisible to SDKs) are listed, marked, only with "Show archived" (the API's ?archived=all).
  const [withArchived, setWithArchived] = useState(false);
  const flags = useResource(
    () =>
      api.get('/api/v1/flags', {
        params: { query: { ...(status ? { environment, status } : {}), ...(withArchived ? { archived: 'all' as const } : {}) } },
      }),
    [live.tick, status, environment, withArchived],
  );
  const shown = useMemo(() => (flags.data?.flags ?? []).filter((f) => matchesSearch(f, q.trim())), [flags.data, q]);
  const envs = environments.length ? environments : [environment];
  // In the selected environment: the flags that require each flag (from every flag's `requires`).
  const requiredBy = useMemo(() => {
    const out = new Map<string, string[]>();
    for (const f of flags.data?.flags ?? []) {
      for (const r of f.environments[environment]?.requires ?? []) out.set(r, [...(out.get(r) ?? []), f.key]);
    }
    return out;
  }, [flags.data, environment]);

  return (
    <section aria-labelledby="flags-title">
      <div class="page-head">
        <h1 id="flags-title">Flags</h1>
        <div class="search">
          <label for="flag-search">Search flags</label>
          <input
            id="flag-search"
            type="search"
            placeholder="key, description or tag"
            value={q}
            onInput={(e) => setQ((e.currentTarget as HTMLInputElement).value)}
          />
        </div>
        <div class="search">
          <label for="flag-status">Status in {environment}</label>
          <select id="flag-status" value={status} onChange={(e) => setStatus((e.currentTarget as HTMLSelectElement).value as typeof status)}>
            <option value="">any</option>
            {LIFECYCLE_STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <label class="inline">
          <input type="checkbox" checked={withArchived} onChange={(e) => setWithArchived((e.currentTarget as HTMLInputElement).checked)} /> Show
          archived
        </label>
        <NewFlagButton />
        <div class="view-switch">
          <button type="button" aria-pressed={view === 'all'} onClick={() => setView('all')}>
            All flags
          </button>
          <button type="button" aria-pressed={view === 'ready'} onClick={() => setView('ready')}>
            Ready to remove
          </button>
        </div>
      </div>
      <ConnectedSdks environment={environment} />
      {flags.error && (
        <p class="error" role="alert">
          {flags.error}
        </p>
      )}
      {view === 'ready' && flags.data && <ReadyToRemove flags={shown} environment={environment} />}
      {view === 'all' && flags.data && shown.length === 0 && (
        <p class="muted">{q ? `No flag matches “${q}”.` : status ? `No flag is ${status} in ${environment}.` : 'No flags yet.'}</p>
      )}
      {view === 'all' && shown.length > 0 && (
        <div class="table-wrap">
          <table class="flags">
            <caption class="sr-only">Flags and their state per environment</caption>
            <thead>
              <tr>
                <th scope="col">Flag</th>
                {envs.map((e) => (
                  <th scope="col" key={e} class={e === environment ? 'env current' : 'env'}>
                    {e}
                  </th>
                ))}
                <th scope="col">Kill switch ({environment})</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((f) => {
                const state = f.environments[environment];
                return (
                  <tr key={f.key} data-flag={f.key}>
                    <th scope="row">
                      <a href={flagPath(f.key)} onClick={onLinkClick}>
                        {f.key}
                      </a>{' '}
                      <span class="kind">{f.kind}</span> <LifecycleBadge lifecycle={state?.lifecycle} />
                      {f.archived && <span class="badge muted">archived</span>}
                      {f.description && <div class="muted small">{f.description}</div>}
                      {(state?.requires?.length ?? 0) > 0 && <div class="muted small requires">requires {state!.requires!.join(', ')}</div>}
                      {state?.lastChange && (
                        <div class="muted small last-change" data-testid="last-change">
                          {state.lastChange.action.replace(/^flag(-state)?\./, '')} {formatLocalTime(state.lastChange.at)} by {state.lastChange.by}
                          {state.lastChange.reason ? `: ${state.lastChange.reason}` : ''}
                        </div>
                      )}
                      {requiredBy.has(f.key) && (
                        <div class="muted small required-by" title={`Killing ${f.key} in ${environment} turns these off too`}>
                          required by {requiredBy.get(f.key)!.join(', ')}
                        </div>
                      )}
                    </th>
                    {envs.map((e) => (
                      <td key={e} class={e === environment ? 'env current' : 'env'}>
                        <StateBadge summary={f.environments[e]} />
                        {e === environment && f.environments[e] && servingText(f.environments[e]!) && (
                          <div class="small serving" data-testid="serving">
                            {servingText(f.environments[e]!)}
                          </div>
                        )}
                      </td>
                    ))}
                    <td>
                      {state && !f.archived && (
                        <KillSwitch
                          flag={f.key}
                          environment={environment}
                          enabled={state.enabled}
                          killed={state.killedAt !== null}
                          onDone={flags.reload}
                          compact
                        />
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** What an enabled state serves, in a few words: "on to everyone", "on 5% · off 95%", "2 rules, then off" (null when off: the badge says it). */
export function servingText(summary: EnvironmentSummary): string | null {
  if (!summary.enabled) return null;
  const { rules, targets, fallthrough } = summary.serving;
  const rest =
    'variant' in fallthrough
      ? fallthrough.variant
      : fallthrough.rollout.weights
          .filter((w) => w.percent > 0)
          .map((w) => `${w.variant} ${w.percent}%`)
          .join(' · ');
  const first = [targets > 0 ? `${targets} targeted` : '', rules > 0 ? `${rules} rule${rules === 1 ? '' : 's'}` : ''].filter(Boolean).join(', ');
  return first ? `${first}, then ${rest}` : 'variant' in fallthrough ? `${rest} to everyone` : rest;
}

/** "killed" only when a kill switch was thrown; a flag that was never turned on is just "off". */
export function StateBadge({ summary }: { summary: EnvironmentSummary | undefined }) {
  if (summary === undefined) return <span class="badge muted">–</span>;
  if (summary.enabled) return <span class="badge on">on</span>;
  return summary.killedAt !== null ? (
    <span class="badge off" title={`killed at ${formatLocalTime(summary.killedAt)}`}>
      killed
    </span>
  ) : (
    <span class="badge idle">off</span>
  );
}
