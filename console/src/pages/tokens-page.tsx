/** Tokens: admin tokens and SDK keys. A new secret is shown once, right after creation; revoking asks first. */
import { useCan } from '../lib/me.js';
import { useState } from 'preact/hooks';
import { Modal } from '../components/modal.js';
import { formatLocalTime } from '@aviary/api-client';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import type { Token, TokenCreated } from '../lib/types.js';
import { useResource } from '../lib/use-resource.js';

export function TokensPage({ environments }: { environments: string[] }) {
  const can = useCan();
  const live = useLive();
  const list = useResource(() => api.get('/api/v1/tokens'), [live.tick]);
  const [kind, setKind] = useState<'admin' | 'sdk'>('sdk');
  const [env, setEnv] = useState(environments[0] ?? 'production');
  const [name, setName] = useState('');
  const [created, setCreated] = useState<TokenCreated | null>(null);
  const [revoking, setRevoking] = useState<Token | null>(null);
  const [error, setError] = useState<string | null>(null);

  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const t = await api.post('/api/v1/tokens', { body: { kind, name: name.trim(), ...(kind === 'sdk' ? { environment: env } : {}) } });
      setCreated(t);
      setName('');
      live.refresh();
      list.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const revoke = async () => {
    if (!revoking) return;
    try {
      await api.del('/api/v1/tokens/{id}', { params: { path: { id: revoking.id } } });
      setRevoking(null);
      live.refresh();
      list.reload();
    } catch (err) {
      setError(errorText(err));
      setRevoking(null);
    }
  };

  return (
    <section aria-labelledby="tokens-title">
      <h1 id="tokens-title">Tokens</h1>
      {can('createToken') && (
        <form class="row editor" onSubmit={create} aria-label="Create a token">
          <label>
            Kind{' '}
            <select value={kind} onChange={(e) => setKind((e.currentTarget as HTMLSelectElement).value as 'admin' | 'sdk')}>
              <option value="sdk">SDK key</option>
              <option value="admin">admin token</option>
            </select>
          </label>
          {kind === 'sdk' && (
            <label>
              Environment{' '}
              <select value={env} onChange={(e) => setEnv((e.currentTarget as HTMLSelectElement).value)}>
                {environments.map((x) => (
                  <option key={x}>{x}</option>
                ))}
              </select>
            </label>
          )}
          <label>
            Name{' '}
            <input
              value={name}
              required
              maxLength={200}
              onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)}
              placeholder="checkout-service"
            />
          </label>
          <button type="submit" disabled={name.trim() === ''}>
            Create
          </button>
        </form>
      )}
      {created && (
        <div class="secret" role="alert" data-testid="new-secret">
          <p>
            <strong>{created.name}</strong>: copy this secret now. It is shown only once; the server keeps only a hash.
          </p>
          <code class="token">{created.token}</code>
          <div class="row">
            <button type="button" onClick={() => void navigator.clipboard?.writeText(created.token)}>
              Copy
            </button>
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
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Admin tokens and SDK keys (never their secrets)</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">Environment</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">Status</th>
            </tr>
          </thead>
          <tbody>
            {(list.data?.tokens ?? []).map((t) => (
              <tr key={t.id} data-token={t.id}>
                <th scope="row">
                  {t.name} <span class="muted small">{t.id}</span>
                </th>
                <td>{t.kind}</td>
                <td>{t.environment ?? '–'}</td>
                <td>{formatLocalTime(t.createdAt)}</td>
                <td>{formatLocalTime(t.lastUsedAt, 'never')}</td>
                <td>
                  {t.revokedAt !== null ? (
                    <span class="badge off">revoked</span>
                  ) : !can('deleteToken') ? null : (
                    <button type="button" class="link" onClick={() => setRevoking(t)} aria-label={`Revoke ${t.name}`}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Modal title={`Revoke ${revoking?.name ?? ''}`} open={revoking !== null} onClose={() => setRevoking(null)} danger>
        <p>
          Requests with this token fail from now on{revoking?.kind === 'sdk' ? ', and SDK streams opened with it are closed' : ''}. This cannot be
          undone.
        </p>
        <div class="actions">
          <button type="button" onClick={() => setRevoking(null)} autofocus>
            Cancel
          </button>
          <button type="button" class="kill" onClick={revoke}>
            Revoke
          </button>
        </div>
      </Modal>
    </section>
  );
}
