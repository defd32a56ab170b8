/**
 * "Is it off everywhere?": after a kill (or panic), shows how many connected SDKs have applied the new environment
 * version and how fast, starting from the receipt in the response and following `GET .../sdks` until every SDK has
 * confirmed or 15 s have passed.
 */
import { useEffect, useState } from 'preact/hooks';
import {
  describeReceipt,
  isComplete,
  receiptFromResponse,
  receiptFromSdks,
  type DeliveryReceipt,
} from '../../../server/cli/delivery-receipt.js';
import { api, seg } from '../lib/api.js';

const FOLLOW_MS = 15_000;

export interface DeliveryProgressProps {
  environment: string;
  /** The kill/panic response (KillResult or PanicResult). */
  response: unknown;
  /** When the console sent the request (epoch ms). */
  sentAt: number;
}

export function DeliveryProgress({ environment, response, sentAt }: DeliveryProgressProps) {
  const initial = receiptFromResponse(response);
  const version =
    initial?.version ?? (typeof (response as { environmentVersion?: unknown })?.environmentVersion === 'number' ? (response as { environmentVersion: number }).environmentVersion : null);
  const [receipt, setReceipt] = useState<DeliveryReceipt | null>(initial);
  const [following, setFollowing] = useState(version !== null && !(initial && isComplete(initial)));
  const [note, setNote] = useState<string | null>(null);

  useEffect(() => {
    if (version === null || (initial && isComplete(initial))) return;
    let stopped = false;
    const deadline = Date.now() + FOLLOW_MS;
    const step = async () => {
      try {
        const r = receiptFromSdks(await api.get(`/environments/${seg(environment)}/sdks`), version, sentAt);
        if (stopped) return;
        setReceipt(r);
        if (isComplete(r)) return setFollowing(false);
      } catch (e) {
        if (stopped) return;
        setNote(`cannot follow delivery: ${e instanceof Error ? e.message : String(e)}`);
        return setFollowing(false);
      }
      if (Date.now() >= deadline) return setFollowing(false);
      setTimeout(() => void step(), 250);
    };
    void step();
    return () => {
      stopped = true;
    };
  }, [environment, version, sentAt]);

  if (!receipt) {
    return <p class="delivery" role="status">{version === null ? 'The server sent no delivery receipt.' : 'Waiting for delivery receipts…'}</p>;
  }
  const done = isComplete(receipt);
  return (
    <div class={`delivery ${done ? 'ok' : following ? '' : 'warn'}`} role="status" aria-live="polite" data-testid="delivery">
      <label>
        <span class="delivery-text" data-testid="delivery-text">{describeReceipt(receipt)}</span>
        <progress max={Math.max(1, receipt.connected)} value={receipt.connected === 0 ? 1 : receipt.applied} />
      </label>
      {!done && !following && receipt.pending.length > 0 && (
        <p>
          Not confirmed by: <code>{receipt.pending.join(', ')}</code>
        </p>
      )}
      {following && <p class="muted">following acknowledgements…</p>}
      {note && <p class="error">{note}</p>}
    </div>
  );
}
