/** The console shell: sign-in gate, header (environment switcher, panic button, live status), navigation, pages. */
import { useEffect, useState } from 'preact/hooks';
import { PanicBanner, PanicButton, usePanic, type PanicMode } from './components/panic-button.js';
import { LiveContext, useLivePoller } from './lib/live.js';
import { onLinkClick, useRoute } from './lib/router.js';
import { ApiError } from './lib/api.js';
import { fetchMe, MeContext, permissions, type Permissions } from './lib/me.js';
import { getCsrf, getEnvironment, getToken, setEnvironment, setToken } from './lib/session.js';
import { lazy } from './lib/lazy.js';
import { FlagPage } from './pages/flag-page.js';
import { FlagsPage } from './pages/flags-page.js';
import { SignIn } from './pages/sign-in.js';

// Off the incident path: loaded when first opened (console/src/lib/lazy.tsx).
const AuditPage = lazy(() => import('./pages/audit-page.js').then((m) => m.AuditPage));
const ChangeRequestsPage = lazy(() => import('./pages/change-requests-page.js').then((m) => m.ChangeRequestsPage));
const WebhooksPage = lazy(() => import('./pages/webhooks-page.js').then((m) => m.WebhooksPage));
const CanaryPage = lazy(() => import('./pages/canary-page.js').then((m) => m.CanaryPage));
const SegmentsPage = lazy(() => import('./pages/segments-page.js').then((m) => m.SegmentsPage));
const TokensPage = lazy(() => import('./pages/tokens-page.js').then((m) => m.TokensPage));

/** Ends an OpenID Connect session at the server (and, when the provider supports it, at the provider). */
async function endSession(): Promise<void> {
  const csrf = getCsrf();
  const r = await fetch('/auth/logout', { method: 'POST', headers: csrf ? { 'x-aviary-csrf': csrf } : {} });
  const { redirectTo } = r.ok ? ((await r.json()) as { redirectTo: string }) : { redirectTo: '/' };
  location.assign(redirectTo);
}

export function App() {
  // Signed in with a token (sessionStorage) or a console session (its readable CSRF cookie says one may exist).
  const [signedIn, setSignedIn] = useState(getToken() !== null || getCsrf() !== null);
  const [perms, setPerms] = useState<Permissions | null>(null);
  const signedOut = () => {
    setToken(null);
    setPerms(null);
    setSignedIn(false);
  };
  const signOut = () => {
    if (getToken() !== null || perms?.me?.actor.kind !== 'person') return signedOut();
    void endSession();
  };
  const live = useLivePoller(signedIn, signedOut);
  useEffect(() => {
    if (!signedIn) return;
    fetchMe().then(
      (me) => setPerms(permissions(me)),
      (e: unknown) => {
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) signedOut();
        // Unreachable: keep the console up (the live indicator says offline); nothing is shown that needs a role.
        else setPerms(permissions(null));
      },
    );
  }, [signedIn]);
  const route = useRoute();
  const [env, setEnv] = useState<string>(getEnvironment() ?? 'production');

  useEffect(() => {
    // Keep the selection valid when environments load (or one is removed).
    if (live.environments.length && !live.environments.some((e) => e.key === env)) setEnv(live.environments.at(-1)!.key);
  }, [live.environments]);
  useEffect(() => setEnvironment(env), [env]);
  const panic = usePanic(env, live.tick, signedIn);
  const [panicMode, setPanicMode] = useState<PanicMode>('closed');

  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />;
  if (perms === null) return <p class="muted">Loading…</p>;
  const me = perms.me;

  const nav = (href: string, label: string, active: boolean) => (
    <a href={href} onClick={onLinkClick} aria-current={active ? 'page' : undefined}>
      {label}
    </a>
  );

  return (
    <MeContext.Provider value={perms}>
      <LiveContext.Provider value={live}>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header class="top">
          <a class="brand" href="/" onClick={onLinkClick}>
            Aviary
          </a>
          <nav aria-label="Main">
            {nav('/', 'Flags', route.page === 'flags' || route.page === 'flag' || route.page === 'canary')}
            {nav('/change-requests', 'Change requests', route.page === 'change-requests')}
            {nav('/audit', 'Audit log', route.page === 'audit')}
            {nav('/segments', 'Segments', route.page === 'segments')}
            {perms.can('listTokens') && nav('/tokens', 'Tokens', route.page === 'tokens')}
            {perms.can('listWebhooks') && nav('/webhooks', 'Webhooks', route.page === 'webhooks')}
          </nav>
          <div class="env">
            <label for="env-select">Environment</label>
            <select id="env-select" value={env} onChange={(e) => setEnv((e.currentTarget as HTMLSelectElement).value)}>
              {(live.environments.length ? live.environments : [{ key: env, version: 0 }]).map((e) => (
                <option value={e.key} key={e.key}>
                  {e.key}
                </option>
              ))}
            </select>
          </div>
          {(perms.can('killAll', env) || perms.can('reviveAll', env)) && (
            <PanicButton environment={env} panic={panic} mode={panicMode} setMode={setPanicMode} />
          )}
          <span
            class={`live ${live.error ? 'down' : live.mode === 'poll' ? 'polling' : ''}`}
            role="status"
            title={
              live.error ??
              (live.mode === 'push' ? 'Following the server’s changes as they happen' : 'The change stream is down: polling the server every 2 s')
            }
          >
            {live.error ? 'offline' : live.mode === 'push' ? 'live' : live.lastOk ? 'polling' : '…'}
          </span>
          {me && (
            <span class="who" title={me.actor.email ?? me.actor.subject ?? me.actor.name}>
              <span class="who-name">{me.actor.name}</span> <span class="who-role">{me.role}</span>
              {me.environments && <span class="muted"> ({me.environments.join(', ')})</span>}
            </span>
          )}
          <button type="button" class="link" onClick={signOut}>
            Sign out
          </button>
        </header>
        <PanicBanner environment={env} panic={panic} onRestore={perms.can('reviveAll', env) ? () => setPanicMode('restore') : null} />
        {live.error && (
          <div class="stale-banner" id="stale-banner" role="alert">
            <strong>The server cannot be reached</strong> ({live.error}).{' '}
            {live.lastOk
              ? `Everything below is as of ${new Date(live.lastOk).toLocaleTimeString()} and may be stale: kill switches and other changes cannot be sent until it answers. Retrying…`
              : 'Nothing below is current: kill switches and other changes cannot be sent until it answers. Retrying…'}
          </div>
        )}
        <main id="main" tabIndex={-1} data-stale={live.error ? 'true' : undefined} aria-describedby={live.error ? 'stale-banner' : undefined}>
          {route.page === 'flags' && <FlagsPage environment={env} environments={live.environments.map((e) => e.key)} />}
          {route.page === 'flag' && <FlagPage flagKey={route.key} environment={env} environments={live.environments.map((e) => e.key)} />}
          {route.page === 'canary' && <CanaryPage flagKey={route.key} environment={env} />}
          {route.page === 'audit' && <AuditPage environment={env} />}
          {route.page === 'change-requests' && <ChangeRequestsPage environment={env} />}
          {route.page === 'segments' && <SegmentsPage />}
          {route.page === 'tokens' && <TokensPage environments={live.environments.map((e) => e.key)} />}
          {route.page === 'webhooks' && <WebhooksPage />}
          {route.page === 'not-found' && <p>No such page.</p>}
        </main>
      </LiveContext.Provider>
    </MeContext.Provider>
  );
}
