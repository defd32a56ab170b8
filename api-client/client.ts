/**
 * The typed client of Aviary's admin API: openapi-fetch over the `paths` generated from openapi/openapi.yaml, so
 * every path, path and query parameter, request body and response body is checked against the spec at compile time.
 * It only uses `fetch`, so the same code runs in Node 20 (the `aviary` CLI) and in browsers (the console).
 *
 * On top of openapi-fetch it adds what both callers need: the admin token read from a function on every request
 * (the console keeps it in sessionStorage), a timeout, and errors as exceptions: `ApiError` when the server answered
 * with a problem document (RFC 9457), `UnreachableError` when nothing answered. Successful calls resolve to the
 * response body, typed from the spec.
 */
import createClient, { type Client, type FetchResponse, type MaybeOptionalInit } from 'openapi-fetch';
import type { HttpMethod, PathsWithMethod, RequiredKeysOf } from 'openapi-typescript-helpers';
import type { paths, Problem } from './types.js';

/** The server answered with a 4xx/5xx; `problem` is its RFC 9457 body (field errors in `problem.errors`). */
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
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
    const c = (e as Error & { cause?: unknown }).cause;
    if (c instanceof Error) return (c as Error & { code?: string }).code ?? c.message;
    return e.message;
  }
  return String(e);
}

/** "Request validation failed: /rules/0/id: required", a problem as one line. */
export function describeProblem(p: Pick<Problem, 'status' | 'title' | 'detail' | 'errors'>): string {
  const head = [p.title, p.detail].filter((s): s is string => typeof s === 'string' && s.length > 0);
  // The detail often repeats the title; keep one of them.
  const text = head.length === 2 && head[1]!.startsWith(head[0]!) ? head[1]! : head.join(': ') || `HTTP ${p.status}`;
  const issues = (p.errors ?? []).map((e) => `${e.path || '/'}: ${e.message}`);
  if (!issues.length) return text;
  // A validation problem's detail is its first issue: say each issue once.
  if (typeof p.detail === 'string' && issues.includes(p.detail))
    return `${typeof p.title === 'string' && p.title ? p.title : `HTTP ${p.status}`}: ${issues.join('; ')}`;
  return `${text} (${issues.join('; ')})`;
}

/** The problem document of an error answer; a body that is not one (a proxy's HTML page) becomes a minimal one. */
function toProblem(response: Response, body: unknown): Problem {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const b = body as Partial<Problem>;
    return {
      ...b,
      type: typeof b.type === 'string' ? b.type : 'about:blank',
      title: typeof b.title === 'string' ? b.title : response.statusText,
      status: response.status,
    };
  }
  const text = typeof body === 'string' ? body.trim().slice(0, 200) : '';
  return { type: 'about:blank', title: response.statusText || `HTTP ${response.status}`, status: response.status, ...(text ? { detail: text } : {}) };
}

/** Options of `createApiClient`. */
export interface ApiClientOptions {
  /** Server base URL, e.g. `http://127.0.0.1:4242`; an empty string means the page's own origin (the console). */
  baseUrl: string;
  /** The admin token, read on every request (so the console can sign out without rebuilding the client). */
  token: () => string | null;
  /** Per-request timeout in milliseconds (default 10 s). */
  timeoutMs?: number;
  /**
   * The console's CSRF token when signed in with OpenID Connect (a session cookie, no token): sent as `X-Aviary-CSRF`
   * on every write (CONTRACT §14; server/oidc/console-auth.ts).
   */
  csrf?: () => string | null;
}

type Method = Extract<HttpMethod, 'get' | 'put' | 'post' | 'delete' | 'patch'>;
type Op<P extends PathsWithMethod<paths, M>, M extends Method> = Exclude<paths[P][M], undefined>;
/** The second argument: `params` (path, query, header) and `body`, as the operation declares them, plus fetch options. */
type Init<P extends PathsWithMethod<paths, M>, M extends Method> = MaybeOptionalInit<paths[P], M>;
/**
 * Required when the operation has required parameters or a body (openapi-fetch's rule). Not inferred from the
 * argument, so an object literal gets excess-property checks: a misspelt body member is a type error.
 */
type Args<I> = RequiredKeysOf<I> extends never ? [init?: I] : [init: I];
/** The body of the operation's success answer (undefined for 204). */
type Data<P extends PathsWithMethod<paths, M>, M extends Method> = NoContent<
  NonNullable<FetchResponse<Op<P, M>, Record<string, never>, `${string}/${string}`>['data']>
>;
type NoContent<D> = [D] extends [never] ? undefined : D;

/** A success answer with the headers callers use. */
export interface ApiResponse<D> {
  status: number;
  data: D;
  /** The `ETag` header (flags, flag states, segments), for `If-Match` on the next write. */
  etag: string | null;
}

type Call<M extends Method> = <P extends PathsWithMethod<paths, M>>(path: P, ...init: Args<Init<P, M>>) => Promise<Data<P, M>>;

/** The admin API client. Paths are the spec's (`/api/v1/flags/{key}`), parameters go in `params`. */
export interface ApiClient {
  get: Call<'get'>;
  post: Call<'post'>;
  put: Call<'put'>;
  patch: Call<'patch'>;
  del: Call<'delete'>;
  /** Any method, resolving to the body with the status and ETag (the state editor sends the ETag back as If-Match). */
  request<M extends Method, P extends PathsWithMethod<paths, M>>(method: M, path: P, ...init: Args<Init<P, M>>): Promise<ApiResponse<Data<P, M>>>;
  /** The underlying openapi-fetch client (answers `{ data, error, response }` and throws nothing of ours). */
  readonly raw: Client<paths>;
}

export function createApiClient(opts: ApiClientOptions): ApiClient {
  const baseUrl = opts.baseUrl.replace(/\/+$/, '');
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const where = baseUrl || 'the server';
  const raw = createClient<paths>({
    baseUrl,
    headers: { accept: 'application/json, application/problem+json' },
    // The token and the timeout are added here, per request; a failure to get any answer is UnreachableError.
    fetch: async (request: Request) => {
      const token = opts.token();
      if (token) request.headers.set('authorization', `Bearer ${token}`);
      const csrf = request.method !== 'GET' && request.method !== 'HEAD' ? opts.csrf?.() : null;
      if (csrf) request.headers.set('x-aviary-csrf', csrf);
      try {
        return await fetch(request, { signal: AbortSignal.timeout(timeoutMs) });
      } catch (e) {
        throw new UnreachableError(where, e);
      }
    },
  });

  async function request(method: Method, path: string, init?: object): Promise<ApiResponse<unknown>> {
    let r: { data?: unknown; error?: unknown; response: Response };
    try {
      r = await (raw.request as (m: string, p: string, i?: object) => Promise<typeof r>)(method, path, init);
    } catch (e) {
      if (e instanceof UnreachableError) throw e;
      // The answer began but its body did not arrive in time, or was cut off.
      if (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError' || e instanceof TypeError))
        throw new UnreachableError(where, e);
      if (e instanceof SyntaxError) throw new Error(`${where} answered ${method.toUpperCase()} ${path} with a body that is not JSON`);
      throw e;
    }
    if (!r.response.ok) throw new ApiError(r.response.status, toProblem(r.response, r.error));
    return { status: r.response.status, data: r.data, etag: r.response.headers.get('etag') };
  }
  const data = (method: Method) => async (path: string, init?: object) => (await request(method, path, init)).data;

  return {
    get: data('get') as Call<'get'>,
    post: data('post') as Call<'post'>,
    put: data('put') as Call<'put'>,
    patch: data('patch') as Call<'patch'>,
    del: data('delete') as Call<'delete'>,
    request: request as ApiClient['request'],
    raw,
  };
}
