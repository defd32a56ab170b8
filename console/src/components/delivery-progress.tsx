/**
 * "Is it off everywhere?": after a kill (or panic), shows how many connected SDKs have applied the new environment
 * version and how fast, starting from the receipt in the answer (kill and revive carry one) and following
 * `GET .../sdks` until every SDK has confirmed or 15 s have passed.
 */
import { useEffect, useState } from 'preact/hooks';
import { deliveryFromReceipt, describeDelivery, followDelivery, isComplete, type Delivery, type DeliveryReceipt } from '@aviary/api-client';
import { api, errorText } from '../lib/api.js';
import { groupByRelay, pathLabel, type RelayGroup } from '../lib/relay-groups.js';

const FOLLOW_MS = 15_000;

export interface DeliveryProgressProps {
  environment: string;
  /** The environment version the change produced (`environmentVersion` of the answer). */
  version: number;
  /** The receipt the answer carried (kill, revive), if any. */
  receipt?: DeliveryReceipt | undefined;
  /** When the console sent the request (epoch ms). */
  sentAt: number;
}

export function DeliveryProgress({ environment, version, receipt, sentAt }: DeliveryProgressProps) {
  const [initial] = useState<Delivery | null>(() => (receipt ? deliveryFromReceipt(receipt) : null));
  const [delivery, setDelivery] = useState<Delivery | null>(initial);
  const [following, setFollowing] = useState(!(initial && isComplete(initial)));
  const [note, setNote] = useState<string | null>(null);

  useEffect(() => {
    if (initial && isComplete(initial)) return;
    let stopped = false;
    followDelivery(api, {
      environment,
      version,
      changedAt: sentAt,
      initial,
      timeoutMs: FOLLOW_MS,
      intervalMs: 250,
      onUpdate: (d) => !stopped && setDelivery(d),
      stopped: () => stopped,
    }).then(
      () => !stopped && setFollowing(false),
      (e) => {
        if (stopped) return;
        setNote(`cannot follow delivery: ${errorText(e)}`);
        setFollowing(false);
      },
    );
    return () => {
      stopped = true;
    };
  }, [environment, version, sentAt]);

  if (!delivery)
    return (
      <p class="delivery" role="status">
        Waiting for delivery receipts…
      </p>
    );
  const done = isComplete(delivery);
  return (
    <div class={`delivery ${done ? 'ok' : following ? '' : 'warn'}`} role="status" aria-live="polite" data-testid="delivery">
      <label>
        <span class="delivery-text" data-testid="delivery-text">
          {describeDelivery(delivery)}
        </span>
        <progress max={Math.max(1, delivery.connected)} value={delivery.connected === 0 ? 1 : delivery.applied} />
      </label>
      {!done && !following && delivery.pending.length > 0 && (
        <p>
          Not confirmed by: <code>{delivery.pending.join(', ')}</code>
        </p>
      )}
      <RelayBreakdown environment={environment} version={version} applied={delivery.applied} />
      {following && <p class="muted">following acknowledgements…</p>}
      {note && <p class="error">{note}</p>}
    </div>
  );
}

/**
 * The receipt per relay (issue 13): when some SDKs are behind relays, how many behind each relay path have applied
 * the version. Re-read whenever the overall count moves.
 */
function RelayBreakdown({ environment, version, applied }: { environment: string; version: number; applied: number }) {
  const [groups, setGroups] = useState<RelayGroup[] | null>(null);
  useEffect(() => {
    let stopped = false;
    api.get('/api/v1/environments/{env}/sdks', { params: { path: { env: environment } } }).then(
      (list) => !stopped && setGroups(groupByRelay(list.items, version)),
      () => undefined,
    );
    return () => {
      stopped = true;
    };
  }, [environment, version, applied]);
  if (!groups || groups.every((g) => g.path.length === 0)) return null;
  return (
    <ul class="relay-receipt" data-testid="delivery-relays">
      {groups.map((g) => (
        <li key={g.path.join('/')} data-via={g.path.join(' → ')}>
          {pathLabel(g.path)}: {g.applied} of {g.sdks.length} applied
        </li>
      ))}
    </ul>
  );
}
