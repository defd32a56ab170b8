/**
 * The SDKs connected to an environment and the version each has applied: at a glance, whether the latest change
 * (the environment's version) has reached everyone.
 */
import { toConnectedSdk, type ConnectedSdk } from '../../../server/cli/delivery-receipt.js';
import { api, seg } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import type { ConnectedSdkList } from '../lib/types.js';
import { useResource } from '../lib/use-resource.js';

export function ConnectedSdks({ environment }: { environment: string }) {
  const live = useLive();
  const list = useResource(() => api.get<ConnectedSdkList>(`/environments/${seg(environment)}/sdks`), [environment, live.tick]);
  if (list.error) return <p class="error">{list.error}</p>;
  if (!list.data) return null;
  const sdks = list.data.items.map(toConnectedSdk).filter((s): s is ConnectedSdk => s !== null);
  const current = sdks.filter((s) => s.appliedVersion !== null && s.appliedVersion >= list.data!.version).length;
  return (
    <details class="sdks" data-testid="connected-sdks">
      <summary>
        {sdks.length === 0
          ? `No SDKs connected to ${environment}`
          : `${current} of ${sdks.length} connected SDK${sdks.length === 1 ? '' : 's'} on the latest version (${list.data.version}) of ${environment}`}
      </summary>
      {sdks.length > 0 && (
        <div class="table-wrap">
          <table class="small">
            <thead>
              <tr>
                <th scope="col">SDK instance</th>
                <th scope="col">App</th>
                <th scope="col">SDK</th>
                <th scope="col">Connected</th>
                <th scope="col">Applied version</th>
              </tr>
            </thead>
            <tbody>
              {sdks.map((s) => (
                <tr key={s.id}>
                  <td>
                    <code>{s.id}</code>
                  </td>
                  <td>{s.app || '–'}</td>
                  <td>{s.sdkVersion || '–'}</td>
                  <td>{s.connectedAt ? new Date(s.connectedAt).toLocaleString() : '–'}</td>
                  <td class={s.appliedVersion === list.data!.version ? '' : 'error'}>{s.appliedVersion ?? '–'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </details>
  );
}
