/** The console's admin API client: same origin, token from the session. */
import { createApiClient } from '../../../server/cli/api-client.js';
import { getToken } from './session.js';

export { ApiError, UnreachableError, seg, describeProblem } from '../../../server/cli/api-client.js';

export const api = createApiClient({ baseUrl: '', token: getToken, timeoutMs: 15_000 });

/** A message for an error thrown by the client (or anything else). */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
