/**
 * `@aviary/api-client`: the one typed client of Aviary's admin API, used by the `aviary` CLI (server/cli) and the
 * web console (console/src). Generated types come from openapi/openapi.yaml (`npm run gen:api`).
 */
export { ApiError, UnreachableError, createApiClient, describeProblem, type ApiClient, type ApiClientOptions, type ApiResponse } from './client.js';
export {
  appLabel,
  deliveryFromReceipt,
  deliveryFromSdks,
  describeDelivery,
  followDelivery,
  isComplete,
  quantile,
  sdkLabel,
  type Delivery,
  type FollowOptions,
} from './delivery.js';
export { describeDiff, isChangeRequest } from './change-requests.js';
export { describeExposure } from './exposure.js';
export { formatLocalTime, formatTime, timeMs, type ApiTime } from './time.js';
export type * from './types.js';
