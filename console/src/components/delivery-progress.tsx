/**
 * "Is it off everywhere?": after a kill (or panic), shows how many connected SDKs have applied the new environment
 * version and how fast, starting from the receipt in the answer (kill and revive carry one) and following
 * `GET .../sdks` until every SDK has confirmed or 15 s have passed.
 */
import { useEffect, useState } from 'preact/hooks';
import {
  deliveryFromReceipt,
  describeDelivery,
  followDelivery,
  isComplete,
  type ConnectedSdk,
  type Delivery,
  type DeliveryReceipt,
} from '@aviary/api-client';
import { api, errorText } from '../lib/api.js';
import { appOf, groupByApp, instancesTitle } from '../lib/app-groups.js';
import { groupByRelay, pathLabel } from '../lib/relay-groups.js';

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
      <SdkBreakdown environment={environment} version={version} applied={delivery.applied} pending={!done && !following ? delivery.pending : []} />
      {following && <p class="muted">following acknowledgements…</p>}
      {note && <p class="error">{note}</p>}
    </div>
  );
}

/**
 * The receipt per app (issue 18) and per relay (issue 13): how many SDKs of each app name and version have applied
 * the version ("storefront 4.2.0: 3 of 3 applied", the SDK instance ids in the title), and, when some SDKs are behind
 * relays, how many behind each relay path. Re-read whenever the overall count moves. SDKs that have not confirmed
 * when following stops are named by app, their instance id in the title.
 */
function SdkBreakdown({ environment, version, applied, pending }: { environment: string; version: number; applied: number; pending: string[] }) {
  const [sdks, setSdks] = useState<ConnectedSdk[] | null>(null);
  useEffect(() => {
    let stopped = false;
    api.get('/api/v1/environments/{env}/sdks', { params: { path: { env: environment } } }).then(
      (list) => !stopped && setSdks(list.items),
      () => undefined,
    );
    return () => {
      stopped = true;
    };
  }, [environment, version, applied, pending.length]);
  const byId = new Map((sdks ?? []).map((s) => [s.id, s]));
  const relays = sdks ? groupByRelay(sdks, version) : [];
  const apps = sdks ? groupByApp(sdks, version) : [];
  return (
    <>
      {pending.length > 0 && (
        <p data-testid="delivery-pending">
          Not confirmed by:{' '}
          {pending.map((id, i) => {
            const s = byId.get(id);
            return (
              <span key={id}>
                {i > 0 && ', '}
                <span title={`SDK instance ${id}`}>{s ? appOf(s) : <code>{id}</code>}</span>
              </span>
            );
          })}
        </p>
      )}
      {apps.length > 0 && (
        <ul class="app-receipt" data-testid="delivery-apps" aria-label="Applied, by app">
          {apps.map((g) => (
            <li key={g.label} title={instancesTitle(g)}>
              {g.label}: {g.applied} of {g.sdks.length} applied
            </li>
          ))}
        </ul>
      )}
      {relays.some((g) => g.path.length > 0) && (
        <ul class="relay-receipt" data-testid="delivery-relays">
          {relays.map((g) => (
            <li key={g.path.join('/')} data-via={g.path.join(' → ')}>
              {pathLabel(g.path)}: {g.applied} of {g.sdks.length} applied
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
