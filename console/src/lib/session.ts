/**
 * The admin token lives in sessionStorage: it survives a reload of the tab but not closing it, is not shared with
 * other tabs, and never appears in a URL (where it would end up in history, logs and referrers).
 */
const TOKEN_KEY = 'aviary.token';
const ENV_KEY = 'aviary.environment';

export function getToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

export function getEnvironment(): string | null {
  return sessionStorage.getItem(ENV_KEY);
}

export function setEnvironment(env: string): void {
  sessionStorage.setItem(ENV_KEY, env);
}

/**
 * The CSRF token of an OpenID Connect console session: the server sets it in a cookie the page may read (the session
 * cookie itself is HttpOnly) and requires it back in a header on every write.
 */
export function getCsrf(): string | null {
  const m = /(?:^|;\s*)(?:__Host-)?aviary_csrf=([^;]+)/.exec(document.cookie);
  return m?.[1] ?? null;
}
