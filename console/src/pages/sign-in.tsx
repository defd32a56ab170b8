import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, errorText } from '../lib/api.js';
import { setToken } from '../lib/session.js';

interface AuthConfig {
  oidc: { name: string; loginUrl: string } | null;
}

/**
 * Sign-in: with the OpenID Connect provider when the server has one (`GET /auth/config`), and with an admin token
 * (checked against the API before it is kept, in sessionStorage only).
 */
export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [token, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [config, setConfig] = useState<AuthConfig | null>(null);
  useEffect(() => {
    fetch('/auth/config', { headers: { accept: 'application/json' } })
      .then((r) => (r.ok ? (r.json() as Promise<AuthConfig>) : { oidc: null }))
      .then(setConfig, () => setConfig({ oidc: null }));
  }, []);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setToken(token.trim());
    try {
      await api.get('/api/v1/environments');
      onSignedIn();
    } catch (err) {
      setToken(null);
      setError(
        err instanceof ApiError && (err.status === 401 || err.status === 403)
          ? 'That token was not accepted. Use an admin token (SDK keys cannot sign in).'
          : errorText(err),
      );
    } finally {
      setBusy(false);
    }
  };
  const oidc = config?.oidc;
  const returnTo = location.pathname + location.search;
  return (
    <main class="signin" id="main">
      <h1>Aviary</h1>
      {oidc && (
        <p>
          <a class="button" href={`${oidc.loginUrl}?returnTo=${encodeURIComponent(returnTo)}`}>
            Sign in with {oidc.name}
          </a>
        </p>
      )}
      <form onSubmit={submit} method="post" action="#">
        {oidc && <p class="muted">Or with an admin token:</p>}
        <label for="token">Admin token</label>
        <input
          id="token"
          type="password"
          autocomplete="current-password"
          value={token}
          onInput={(e) => setValue((e.currentTarget as HTMLInputElement).value)}
          required
          autofocus={!oidc}
        />
        <p class="muted">Kept in this tab only (sessionStorage) and sent as a bearer header; never put in a URL.</p>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy || token.trim() === ''}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
