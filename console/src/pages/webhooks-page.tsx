/**
 * Outbound webhooks (CONTRACT §13): the list, a form to create one (its signing secret shown once, right after
 * creation), enable / disable, a test event, and each webhook's delivery log (attempts, last status, error, latency).
 */
import { useCan } from '../lib/me.js';
import { useState } from 'preact/hooks';
import { formatLocalTime } from '@aviary/api-client';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { useResource } from '../lib/use-resource.js';

const EVENT_TYPES = [
  'flag.killed',
  'flag.revived',
  'flag.state.updated',
  'environment.killed_all',
  'environment.revived_all',
  'canary.advanced',
  'canary.rolled_back',
  'canary.promoted',
  'canary.completed',
  'change_request.created',
  'schedule.failed',
] as const;
type EventType = (typeof EVENT_TYPES)[number];

function DeliveryLog({ id, tick }: { id: string; tick: number }) {
  const log = useResource(() => api.get('/api/v1/webhooks/{id}/deliveries', { params: { path: { id } } }), [id, tick]);
  if (log.error) return <p class="error">{log.error}</p>;
  const rows = log.data?.deliveries ?? [];
  if (log.data && rows.length === 0) return <p class="muted">No deliveries yet.</p>;
  return (
    <table class="deliveries">
      <caption>Deliveries (newest first)</caption>
      <thead>
        <tr>
          <th scope="col">Event</th>
          <th scope="col">Status</th>
          <th scope="col">Attempts</th>
          <th scope="col">Last answer</th>
          <th scope="col">Latency</th>
          <th scope="col">Created</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((d) => (
          <tr key={d.id} data-delivery={d.id} data-status={d.status}>
            <td>
              {d.type} <span class="muted small">{d.eventId}</span>
            </td>
            <td>
              <span class={`badge ${d.status === 'delivered' ? 'on' : d.status === 'failed' ? 'off' : ''}`}>{d.status}</span>
            </td>
            <td>{d.attempts}</td>
            <td>{d.lastError ?? d.lastStatusCode ?? '–'}</td>
            <td>{d.lastLatencyMs === null ? '–' : `${d.lastLatencyMs} ms`}</td>
            <td>{formatLocalTime(d.createdAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function WebhooksPage() {
  const can = useCan();
  const live = useLive();
  const [tick, setTick] = useState(0);
  const list = useResource(() => api.get('/api/v1/webhooks'), [live.tick, tick]);
  const [url, setUrl] = useState('');
  const [name, setName] = useState('');
  const [format, setFormat] = useState<'standard' | 'slack'>('standard');
  const [events, setEvents] = useState<EventType[]>(['flag.killed', 'flag.revived']);
  const [created, setCreated] = useState<{ name: string; secret: string } | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const refresh = () => setTick((t) => t + 1);

  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const w = await api.post('/api/v1/webhooks', { body: { url: url.trim(), events, format, ...(name.trim() ? { name: name.trim() } : {}) } });
      setCreated({ name: w.name, secret: w.secret });
      setUrl('');
      setName('');
      refresh();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const act = async (fn: () => Promise<unknown>) => {
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(errorText(err));
    } finally {
      refresh();
    }
  };

  return (
    <section aria-labelledby="webhooks-title">
      <h1 id="webhooks-title">Webhooks</h1>
      {can('createWebhook') && (
        <form class="editor" onSubmit={create} aria-label="Create a webhook">
          <div class="row">
            <label>
              URL{' '}
              <input
                type="url"
                value={url}
                required
                maxLength={2000}
                onInput={(e) => setUrl((e.currentTarget as HTMLInputElement).value)}
                placeholder="https://example.com/hooks/aviary"
              />
            </label>
            <label>
              Webhook name{' '}
              <input value={name} maxLength={200} onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} placeholder="ops channel" />
            </label>
            <label>
              Format{' '}
              <select value={format} onChange={(e) => setFormat((e.currentTarget as HTMLSelectElement).value as 'standard' | 'slack')}>
                <option value="standard">standard (signed JSON)</option>
                <option value="slack">Slack message</option>
              </select>
            </label>
          </div>
          <fieldset>
            <legend>Events</legend>
            {EVENT_TYPES.map((t) => (
              <label key={t} class="small">
                <input
                  type="checkbox"
                  checked={events.includes(t)}
                  onChange={(e) => setEvents((cur) => ((e.currentTarget as HTMLInputElement).checked ? [...cur, t] : cur.filter((x) => x !== t)))}
                />{' '}
                {t}{' '}
              </label>
            ))}
          </fieldset>
          <button type="submit" disabled={url.trim() === '' || events.length === 0}>
            Create webhook
          </button>
        </form>
      )}
      {created && (
        <div class="secret" role="alert" data-testid="new-secret">
          <p>
            <strong>{created.name}</strong>: copy this signing secret now. It is shown only once.
          </p>
          <code class="token">{created.secret}</code>
          <div class="row">
            <button type="button" onClick={() => setCreated(null)}>
              Done, hide it
            </button>
          </div>
        </div>
      )}
      {(error ?? list.error) && (
        <p class="error" role="alert">
          {error ?? list.error}
        </p>
      )}
      {list.data && list.data.webhooks.length === 0 && <p class="muted">No webhooks yet.</p>}
      {(list.data?.webhooks ?? []).map((w) => (
        <article class="webhook" key={w.id} data-webhook={w.id} aria-labelledby={`wh-${w.id}`}>
          <h2 id={`wh-${w.id}`}>
            {w.name} <span class={`badge ${w.enabled ? 'on' : 'off'}`}>{w.enabled ? 'enabled' : 'disabled'}</span>
          </h2>
          <p>
            <code>{w.url}</code> · {w.format} · {w.events.join(', ')} · {w.environments ? w.environments.join(', ') : 'all environments'}
          </p>
          {w.disabledReason && <p class="warn">{w.disabledReason}</p>}
          <div class="row">
            {can('updateWebhook') && (
              <button
                type="button"
                onClick={() => void act(() => api.patch('/api/v1/webhooks/{id}', { params: { path: { id: w.id } }, body: { enabled: !w.enabled } }))}
              >
                {w.enabled ? `Disable ${w.name}` : `Enable ${w.name}`}
              </button>
            )}
            {can('testWebhook') && (
              <button
                type="button"
                disabled={!w.enabled}
                onClick={() => void act(() => api.post('/api/v1/webhooks/{id}/test', { params: { path: { id: w.id } } }))}
              >
                Send test event to {w.name}
              </button>
            )}
            <button type="button" onClick={() => setOpen(open === w.id ? null : w.id)} aria-expanded={open === w.id}>
              Deliveries of {w.name}
            </button>
          </div>
          {open === w.id && <DeliveryLog id={w.id} tick={tick + live.tick} />}
        </article>
      ))}
    </section>
  );
}
