/**
 * Change requests of the selected environment: whether it requires approval (a switch), the open requests with what
 * each would change in the flag's current state (and a warning when the flag moved past the request's base), and
 * approve / reject / apply. Closed requests are shown on demand.
 */
import { useCan } from '../lib/me.js';
import { useState } from 'preact/hooks';
import { formatLocalTime, formatTime } from '@aviary/api-client';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { flagPath, onLinkClick } from '../lib/router.js';
import type { ChangeRequest } from '../lib/types.js';
import { useResource } from '../lib/use-resource.js';

const show = (v: unknown) => (v === undefined ? '' : JSON.stringify(v));

export function ChangeRequestsPage({ environment }: { environment: string }) {
  const can = useCan();
  const live = useLive();
  const [showClosed, setShowClosed] = useState(false);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const env = useResource(() => api.get('/api/v1/environments/{env}', { params: { path: { env: environment } } }), [environment, live.tick]);
  const list = useResource(
    () => api.get('/api/v1/change-requests', { params: { query: { environment, limit: 200 } } }).then((r) => r.changeRequests),
    [environment, live.tick],
  );
  const shown = (list.data ?? []).filter((r) => showClosed || r.status === 'pending' || r.status === 'approved');

  const act = async (r: ChangeRequest, action: 'approve' | 'reject' | 'apply') => {
    setBusy(`${r.id}:${action}`);
    setError(null);
    try {
      const init = { params: { path: { id: r.id } }, body: {} };
      if (action === 'approve') await api.post('/api/v1/change-requests/{id}/approve', init);
      else if (action === 'reject') await api.post('/api/v1/change-requests/{id}/reject', init);
      else await api.post('/api/v1/change-requests/{id}/apply', init);
      live.refresh();
    } catch (e) {
      setError(`${action} ${r.flag}: ${errorText(e)}`);
    } finally {
      setBusy(null);
      list.reload();
    }
  };

  const setApproval = async (requireApproval: boolean) => {
    setError(null);
    try {
      await api.patch('/api/v1/environments/{env}', { params: { path: { env: environment } }, body: { requireApproval } });
      env.reload();
      live.refresh();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <section aria-labelledby="cr-title">
      <div class="page-head">
        <h1 id="cr-title">Change requests in {environment}</h1>
        <div class="row">
          {can('updateEnvironment', environment) && (
            <label>
              <input
                type="checkbox"
                checked={env.data?.requireApproval ?? false}
                disabled={env.data === null}
                onChange={(e) => void setApproval((e.currentTarget as HTMLInputElement).checked)}
              />{' '}
              Require approval for targeting changes in {environment}
            </label>
          )}
          <label>
            <input type="checkbox" checked={showClosed} onChange={(e) => setShowClosed((e.currentTarget as HTMLInputElement).checked)} /> show
            rejected and applied
          </label>
        </div>
      </div>
      <p class="muted">Kill switches, kill-all, revive-all, revert and canary rollbacks are never held for approval.</p>
      {(error ?? list.error) && (
        <p class="error" role="alert">
          {error ?? list.error}
        </p>
      )}
      {list.data !== null && shown.length === 0 && <p class="muted">No open change requests in {environment}.</p>}
      {shown.map((r) => (
        <article class="change-request" key={r.id} data-id={r.id} data-status={r.status} aria-labelledby={`cr-${r.id}`}>
          <h2 id={`cr-${r.id}`}>
            <a href={flagPath(r.flag)} onClick={onLinkClick}>
              {r.flag}
            </a>{' '}
            <span class={`badge ${r.status}`}>{r.status}</span>
          </h2>
          <p>
            By {r.author.name}, <time dateTime={formatTime(r.createdAt)}>{formatLocalTime(r.createdAt)}</time>
            {r.reason ? <> — “{r.reason}”</> : null}
            {r.reviewer && (
              <>
                {' '}
                · {r.status === 'rejected' ? 'rejected' : 'approved'} by {r.reviewer.name}
                {r.reviewReason ? ` (“${r.reviewReason}”)` : ''}
              </>
            )}
          </p>
          {r.currentVersion !== null && r.currentVersion !== r.baseVersion && (
            <p class="warn" role="note">
              The flag changed since this request was made (version {r.baseVersion} → {r.currentVersion}): applying it will be refused. The
              differences below are against the current state.
            </p>
          )}
          {r.diff !== null && (
            <table class="diff">
              <caption>Changes against the current state (version {r.currentVersion})</caption>
              <thead>
                <tr>
                  <th scope="col">Path</th>
                  <th scope="col">Now</th>
                  <th scope="col">After</th>
                </tr>
              </thead>
              <tbody>
                {r.diff.length === 0 && (
                  <tr>
                    <td colSpan={3}>No difference.</td>
                  </tr>
                )}
                {r.diff.map((d) => (
                  <tr key={d.path} data-op={d.op}>
                    <td>
                      <code>{d.path || '/'}</code>
                    </td>
                    <td>
                      <code>{show(d.before)}</code>
                    </td>
                    <td>
                      <code>{show(d.after)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {(r.status === 'pending' || r.status === 'approved') && (
            <div class="row">
              {r.status === 'pending' && can('approveChangeRequest', environment) && (
                <button type="button" disabled={busy !== null} onClick={() => void act(r, 'approve')}>
                  Approve
                </button>
              )}
              {r.status === 'approved' && can('applyChangeRequest', environment) && (
                <button type="button" disabled={busy !== null} onClick={() => void act(r, 'apply')}>
                  Apply
                </button>
              )}
              {can('rejectChangeRequest', environment) && (
                <button type="button" disabled={busy !== null} onClick={() => void act(r, 'reject')}>
                  Reject
                </button>
              )}
            </div>
          )}
        </article>
      ))}
    </section>
  );
}
