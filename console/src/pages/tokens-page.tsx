/**
 * Tokens: admin tokens (with a role and, for editors and on-call, environments) and SDK keys, their expiry and last
 * use. A new secret is shown once, right after creation or rotation; revoking and rotating ask first.
 */
import { useCan } from '../lib/me.js';
import { useState } from 'preact/hooks';
import { Modal } from '../components/modal.js';
import { formatLocalTime } from '@aviary/api-client';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import type { Role, Token, TokenCreated } from '../lib/types.js';
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
  // ---- roles and tokens (issue 17) ----
  const [role, setRole] = useState<Role>('admin');
  const [scope, setScope] = useState<string[]>([]);
  const [expires, setExpires] = useState('');
  const [rotating, setRotating] = useState<Token | null>(null);
  const [overlap, setOverlap] = useState('3600');
  const scoped = kind === 'admin' && (role === 'editor' || role === 'oncall');
  // ---- end of roles and tokens ----
  const [error, setError] = useState<string | null>(null);

  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const t = await api.post('/api/v1/tokens', {
        body: {
          kind,
          name: name.trim(),
          ...(kind === 'sdk' ? { environment: env } : { role }),
          ...(scoped && scope.length > 0 ? { environments: scope } : {}),
          ...(expires ? { expiresAt: new Date(expires).toISOString() } : {}),
        },
      });
      setCreated(t);
      setName('');
      setExpires('');
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

  const rotate = async () => {
    if (!rotating) return;
    try {
      const t = await api.post('/api/v1/tokens/{id}/rotate', { params: { path: { id: rotating.id } }, body: { overlapSeconds: Number(overlap) } });
      setCreated(t);
      setRotating(null);
      live.refresh();
      list.reload();
    } catch (err) {
      setError(errorText(err));
      setRotating(null);
    }
  };
  const now = Date.now();
  const expired = (t: Token) => t.expiresAt !== null && Date.parse(t.expiresAt) <= now;

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
          {kind === 'admin' && (
            <label>
              Role{' '}
              <select value={role} onChange={(e) => setRole((e.currentTarget as HTMLSelectElement).value as Role)}>
                {ROLE_NAMES.map((r) => (
                  <option key={r}>{r}</option>
                ))}
              </select>
            </label>
          )}
          {scoped && (
            <fieldset class="row">
              <legend>May change (none checked: all)</legend>
              {environments.map((x) => (
                <label key={x}>
                  <input
                    type="checkbox"
                    checked={scope.includes(x)}
                    onChange={(e) => {
                      const on = (e.currentTarget as HTMLInputElement).checked;
                      setScope(on ? [...scope, x] : scope.filter((y) => y !== x));
                    }}
                  />{' '}
                  {x}
                </label>
              ))}
            </fieldset>
          )}
          <label>
            Expires <input type="datetime-local" value={expires} onInput={(e) => setExpires((e.currentTarget as HTMLInputElement).value)} />
          </label>
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
              <th scope="col">Role</th>
              <th scope="col">Environment</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">Expires</th>
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
                <td>{t.role ?? '–'}</td>
                <td>{t.environment ?? t.environments?.join(', ') ?? (t.role === 'editor' || t.role === 'oncall' ? 'all' : '–')}</td>
                <td>{formatLocalTime(t.createdAt)}</td>
                <td>{formatLocalTime(t.lastUsedAt, 'never')}</td>
                <td>{formatLocalTime(t.expiresAt, 'never')}</td>
                <td>
                  {t.revokedAt !== null ? (
                    <span class="badge off">revoked</span>
                  ) : expired(t) ? (
                    <span class="badge off">expired</span>
                  ) : (
                    <>
                      {t.replacedBy !== null && <span class="badge">rotated</span>}{' '}
                      {t.replacedBy === null && !t.configured && can('rotateToken') && (
                        <button type="button" class="link" onClick={() => setRotating(t)} aria-label={`Rotate ${t.name}`}>
                          Rotate
                        </button>
                      )}{' '}
                      {can('deleteToken') && (
                        <button type="button" class="link" onClick={() => setRevoking(t)} aria-label={`Revoke ${t.name}`}>
                          Revoke
                        </button>
                      )}
                    </>
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
      <Modal title={`Rotate ${rotating?.name ?? ''}`} open={rotating !== null} onClose={() => setRotating(null)}>
        <p>
          A new secret is made and shown once. The old one keeps working for the overlap, then stops
          {rotating?.kind === 'sdk' ? ' (SDK streams opened with it are closed)' : ''}.
        </p>
        <label>
          Overlap (seconds){' '}
          <input type="number" min={0} max={2592000} value={overlap} onInput={(e) => setOverlap((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <div class="actions">
          <button type="button" onClick={() => setRotating(null)} autofocus>
            Cancel
          </button>
          <button type="button" onClick={rotate}>
            Rotate
          </button>
        </div>
      </Modal>
    </section>
  );
}

// ---- roles and tokens (issue 17) ----
const ROLE_NAMES = ['admin', 'editor', 'oncall', 'viewer'] as const satisfies readonly Role[];
