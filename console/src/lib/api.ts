/** The console's admin API client: the shared typed client (@aviary/api-client), same origin, token from the session. */
import { createApiClient } from '@aviary/api-client';
import { getCsrf, getToken } from './session.js';

export { ApiError, UnreachableError, describeProblem } from '@aviary/api-client';

export const api = createApiClient({ baseUrl: '', token: getToken, csrf: getCsrf, timeoutMs: 15_000 });

/** A message for an error thrown by the client (or anything else). */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
