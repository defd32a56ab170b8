/**
 * The change feed: what other parts of the server subscribe to. Events are emitted only after the writing
 * transaction has committed, in commit order, so a subscriber never sees a change that could still roll back.
 */
import { EventEmitter } from 'node:events';
import type { Delta } from '@aviary/sdk/protocol';

/** One committed write's effect on one environment. */
export interface ChangeEvent {
  environment: string;
  delta: Delta;
}

/** A token was revoked: streams authenticated with it should close. */
export interface TokenRevokedEvent {
  tokenId: string;
  /** The token expired (or its rotation overlap ended) rather than being revoked. */
  expired?: boolean;
}

/** A request failed authentication (for rate limiting and metrics; never carries the presented secret). */
export interface AuthFailureEvent {
  ip: string;
  reason: 'missing' | 'invalid' | 'revoked' | 'wrong-kind' | 'wrong-environment';
  scope: 'admin' | 'sdk' | 'trigger';
}

/** Event map of the feed. */
export interface ChangeFeedEvents {
  'change': [ChangeEvent];
  'token.revoked': [TokenRevokedEvent];
  'auth.failure': [AuthFailureEvent];
  /** An environment was created (it has version 0 and no change log yet), here or on another replica. */
  'environment.created': [{ environment: string }];
  /**
   * This replica could not follow an environment's log delta by delta (it fell further behind than the change log
   * reaches) and reloaded its snapshot: whatever was built from earlier deltas must be rebuilt, and SDKs rehydrated.
   */
  'environment.reset': [{ environment: string }];
}

/** Typed emitter. Listener exceptions are caught by the writer and logged; they never undo a commit. */
export class ChangeFeed extends EventEmitter<ChangeFeedEvents> {
  constructor() {
    super();
    // Every open stream may subscribe; the default cap of 10 would only produce warnings.
    this.setMaxListeners(0);
  }
}
