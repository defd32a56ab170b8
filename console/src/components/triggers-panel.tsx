/**
 * Triggers of one flag in one environment (CONTRACT §13): the list (what each does, when it last fired and how often),
 * a form to create one, whose URL is shown once with a copy button (the server keeps only a hash), and delete (which
 * revokes the URL) after confirmation. docs/integrations.md says where to paste the URL.
 */
import { useCan } from '../lib/me.js';
import { useState } from 'preact/hooks';
import { formatLocalTime, type Schemas } from '@aviary/api-client';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { useResource } from '../lib/use-resource.js';

type Trigger = Schemas['Trigger'];
type TriggerCreated = Schemas['TriggerCreated'];

export function TriggersPanel({ flagKey, environment }: { flagKey: string; environment: string }) {
  const can = useCan();
  const live = useLive();
  const path = { key: flagKey, env: environment };
  const list = useResource(() => api.get('/api/v1/flags/{key}/environments/{env}/triggers', { params: { path } }), [flagKey, environment, live.tick]);
  const [action, setAction] = useState<'kill' | 'revive'>('kill');
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [created, setCreated] = useState<TriggerCreated | null>(null);
  const [copied, setCopied] = useState(false);

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const made = await api.post('/api/v1/flags/{key}/environments/{env}/triggers', { params: { path }, body: { action, name: name.trim() } });
      setCreated(made);
      setCopied(false);
      setName('');
      list.reload();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const remove = async (t: Trigger) => {
    if (!window.confirm(`Delete the trigger "${t.name}"? Its URL stops working at once.`)) return;
    setError(null);
    try {
      await api.del('/api/v1/flags/{key}/environments/{env}/triggers/{id}', { params: { path: { ...path, id: t.id } } });
      if (created?.id === t.id) setCreated(null);
      list.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };

  const copy = async (url: string) => {
    try {
      await navigator.clipboard.writeText(url);
      setCopied(true);
    } catch {
      setError('Copying was refused by the browser: select the URL and copy it by hand.');
    }
  };

  const triggers = list.data?.triggers ?? [];
  return (
    <section class="triggers" aria-labelledby="triggers-title">
      <h2 id="triggers-title">Triggers in {environment}</h2>
      {triggers.length === 0 ? (
        <p class="muted">
          {list.error ?? 'No triggers. A trigger is a secret URL that an alert (Alertmanager, Grafana, Datadog) calls to kill or revive this flag.'}
        </p>
      ) : (
        <table aria-labelledby="triggers-title" class="trigger-list">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Action</th>
              <th scope="col">Last fired</th>
              <th scope="col">Fired</th>
              <th scope="col">Created</th>
              <th scope="col">
                <span class="sr-only">Delete</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {triggers.map((t) => (
              <tr key={t.id} data-trigger={t.id}>
                <td>{t.name}</td>
                <td>{t.action}</td>
                <td>{t.lastFiredAt ? formatLocalTime(t.lastFiredAt) : 'never'}</td>
                <td>{t.fired}</td>
                <td>
                  {formatLocalTime(t.createdAt)} <span class="muted small">by {t.author.name}</span>
                </td>
                <td>
                  {can('deleteTrigger', environment) && (
                    <button type="button" onClick={() => void remove(t)} aria-label={`Delete the trigger ${t.name}`}>
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {created && (
        <div class="secret" role="alert" data-testid="new-trigger-url">
          <p>
            <strong>{created.name}</strong>: copy this URL now. It is shown only once; the server keeps only a hash. A POST to it will{' '}
            {created.action} <strong>{created.flag}</strong> in {created.environment}.
          </p>
          <code class="token">{created.url}</code>
          <div class="row">
            <button type="button" onClick={() => void copy(created.url)}>
              {copied ? 'Copied' : 'Copy URL'}
            </button>
            <button type="button" onClick={() => setCreated(null)}>
              Done, hide it
            </button>
          </div>
        </div>
      )}
      {can('createTrigger', environment) && (
        <form class="trigger-form" onSubmit={create} aria-label="Create a trigger">
          <label>
            Trigger action{' '}
            <select value={action} onChange={(e) => setAction((e.currentTarget as HTMLSelectElement).value as 'kill' | 'revive')}>
              <option value="kill">kill</option>
              <option value="revive">revive</option>
            </select>
          </label>{' '}
          <label>
            Trigger name{' '}
            <input
              type="text"
              required
              maxLength={200}
              placeholder="alertmanager-checkout-errors"
              value={name}
              onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)}
            />
          </label>{' '}
          <button type="submit" disabled={busy}>
            Create trigger
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
