/**
 * A small client for Aviary's admin API (CONTRACT §6), used by the `aviary` CLI and by the web console. It only uses
 * `fetch`, so it runs in Node 20 and in browsers alike. Errors are thrown as `ApiError` (the server answered with a
 * problem document) or `UnreachableError` (nothing answered), which the CLI maps to its exit codes.
 */

/** A field-level problem from an RFC 9457 body. */
export interface ProblemIssue {
  path: string;
  message: string;
}

/** The parts of an RFC 9457 problem document the clients show. */
export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  errors?: ProblemIssue[];
  [extension: string]: unknown;
}

/** The server answered with a 4xx/5xx. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(describeProblem(problem));
    this.name = 'ApiError';
  }
}

/** Nothing answered at the base URL (refused, reset, DNS, timeout). */
export class UnreachableError extends Error {
  constructor(
    readonly url: string,
    cause: unknown,
  ) {
    super(`cannot reach ${url}: ${causeText(cause)}`);
    this.name = 'UnreachableError';
  }
}

function causeText(e: unknown): string {
  if (e instanceof Error) {
    const c = (e as Error & { cause?: unknown }).cause;
    if (c instanceof Error) return (c as Error & { code?: string }).code ?? c.message;
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
    return e.message;
  }
  return String(e);
}

/** "Request validation failed: /rules/0/id: required" — a problem as one line. */
export function describeProblem(p: Problem): string {
  const head = [p.title, p.detail].filter((s) => typeof s === 'string' && s.length > 0);
  // The detail often repeats the title; keep one of them.
  const text = head.length === 2 && head[1]!.startsWith(head[0]!) ? head[1]! : head.join(': ') || `HTTP ${p.status}`;
  const issues = (p.errors ?? []).map((e) => `${e.path || '/'}: ${e.message}`);
  return issues.length ? `${text} (${issues.join('; ')})` : text;
}

/** Options of `createApiClient`. */
export interface ApiClientOptions {
  /** Server base URL, e.g. `http://127.0.0.1:4242` (empty string: same origin, as in the console). */
  baseUrl: string;
  /** Admin token; read on every request so the console can sign out without rebuilding the client. */
  token: () => string | null;
  /** Per-request timeout in milliseconds (default 10 s). */
  timeoutMs?: number;
}

/** A response body with the headers callers care about. */
export interface ApiResponse<T> {
  status: number;
  body: T;
  etag: string | null;
}

/** The admin API client. Paths are relative to `/api/v1`. */
export interface ApiClient {
  request<T = unknown>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse<T>>;
  get<T = unknown>(path: string): Promise<T>;
  post<T = unknown>(path: string, body?: unknown): Promise<T>;
  put<T = unknown>(path: string, body: unknown, ifMatch?: string): Promise<T>;
  del<T = unknown>(path: string): Promise<T>;
}

/** Percent-encodes one path segment (flag keys are safe, but environment names and ids come from users). */
export const seg = (s: string): string => encodeURIComponent(s);

export function createApiClient(opts: ApiClientOptions): ApiClient {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const timeoutMs = opts.timeoutMs ?? 10_000;
  async function request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const url = `${base}/api/v1${path}`;
    const h: Record<string, string> = { accept: 'application/json, application/problem+json', ...headers };
    const token = opts.token();
    if (token) h.authorization = `Bearer ${token}`;
    if (body !== undefined) h['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: h,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new UnreachableError(base || 'the server', e);
    }
    const text = await res.text();
    let parsed: unknown = null;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (!res.ok) {
      const p: Problem =
        typeof parsed === 'object' && parsed !== null
          ? { ...(parsed as Problem), status: res.status }
          : { status: res.status, title: res.statusText, ...(typeof parsed === 'string' && parsed ? { detail: parsed.slice(0, 200) } : {}) };
      throw new ApiError(res.status, p);
    }
    return { status: res.status, body: parsed as T, etag: res.headers.get('etag') };
  }
  return {
    request,
    get: async <T>(path: string) => (await request<T>('GET', path)).body,
    post: async <T>(path: string, body?: unknown) => (await request<T>('POST', path, body ?? {})).body,
    put: async <T>(path: string, body: unknown, ifMatch?: string) =>
      (await request<T>('PUT', path, body, ifMatch ? { 'if-match': ifMatch } : {})).body,
    del: async <T>(path: string) => (await request<T>('DELETE', path)).body,
  };
}
