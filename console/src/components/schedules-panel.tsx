/**
 * Scheduled changes of one flag in one environment (CONTRACT §11): the list (soonest first, with what happened to
 * each), a form to schedule a kill or a revive at a local date and time, and a cancel button on pending ones.
 * The list follows the live tick, so a schedule that runs shows `done` (and the kill switch above flips) on its own.
 */
import { useCan } from '../lib/me.js';
import { useState } from 'preact/hooks';
import { formatLocalTime, type Schemas } from '@aviary/api-client';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { useResource } from '../lib/use-resource.js';

type Schedule = Schemas['Schedule'];

/** A `datetime-local` value for a time `minutes` from now, in the browser's zone. */
function localInputValue(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

export function SchedulesPanel({ flagKey, environment, onChanged }: { flagKey: string; environment: string; onChanged: () => void }) {
  const can = useCan();
  const live = useLive();
  const path = { key: flagKey, env: environment };
  const list = useResource(
    () => api.get('/api/v1/flags/{key}/environments/{env}/schedules', { params: { path } }),
    [flagKey, environment, live.tick],
  );
  const [action, setAction] = useState<'kill' | 'revive'>('kill');
  const [when, setWhen] = useState(() => localInputValue(Date.now() + 60 * 60_000));
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // `datetime-local` is the browser's local time; the API takes RFC 3339.
      const ms = new Date(when).getTime();
      if (Number.isNaN(ms)) throw new Error('Pick a date and time.');
      await api.post('/api/v1/flags/{key}/environments/{env}/schedules', {
        params: { path },
        body: { at: new Date(ms).toISOString(), action, ...(reason.trim() ? { reason: reason.trim() } : {}) },
      });
      setReason('');
      list.reload();
      onChanged();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const cancel = async (s: Schedule) => {
    setError(null);
    try {
      await api.del('/api/v1/flags/{key}/environments/{env}/schedules/{id}', { params: { path: { ...path, id: s.id } } });
      list.reload();
      onChanged();
    } catch (err) {
      setError(errorText(err));
    }
  };

  const schedules = list.data?.schedules ?? [];
  return (
    <section class="schedules" aria-labelledby="schedules-title">
      <h2 id="schedules-title">Scheduled changes in {environment}</h2>
      {schedules.length === 0 ? (
        <p class="muted">{list.error ?? 'Nothing scheduled.'}</p>
      ) : (
        <table aria-labelledby="schedules-title" class="schedule-list">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Action</th>
              <th scope="col">Status</th>
              <th scope="col">By</th>
              <th scope="col">Reason</th>
              <th scope="col">
                <span class="sr-only">Cancel</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {schedules.map((s) => (
              <tr key={s.id} data-schedule={s.id}>
                <td>{formatLocalTime(s.at)}</td>
                <td>{s.action}</td>
                <td class={`schedule-${s.status}`}>
                  {s.status}
                  {s.ranAt && <div class="muted small">{formatLocalTime(s.ranAt)}</div>}
                </td>
                <td>{s.author.name}</td>
                <td>{s.error ? <span class="error">{s.error}</span> : (s.reason ?? '')}</td>
                <td>
                  {s.status === 'pending' && can('cancelSchedule', environment) && (
                    <button type="button" onClick={() => void cancel(s)} aria-label={`Cancel the ${s.action} at ${formatLocalTime(s.at)}`}>
                      Cancel
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {can('createSchedule', environment) && (
        <form class="schedule-form" onSubmit={create} aria-label="Schedule a change">
          <label>
            Action{' '}
            <select value={action} onChange={(e) => setAction((e.currentTarget as HTMLSelectElement).value as 'kill' | 'revive')}>
              <option value="kill">kill</option>
              <option value="revive">revive</option>
            </select>
          </label>{' '}
          <label>
            At <input type="datetime-local" step={1} required value={when} onInput={(e) => setWhen((e.currentTarget as HTMLInputElement).value)} />
          </label>{' '}
          <label>
            Reason <input type="text" maxLength={1000} value={reason} onInput={(e) => setReason((e.currentTarget as HTMLInputElement).value)} />
          </label>{' '}
          <button type="submit" disabled={busy}>
            Schedule
          </button>
          {error && (
            <p class="error" role="alert">
              {error}
            </p>
          )}
        </form>
      )}
    </section>
  );
}
