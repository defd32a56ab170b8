/**
 * The SDKs connected to an environment and the version each has applied: at a glance, whether the latest change
 * (the environment's version) has reached everyone, by relay path and, within each, by app name and version (the SDK
 * instance id in each row's title).
 */
import { formatLocalTime, sdkLabel } from '@aviary/api-client';
import { api } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { groupByApp, instancesTitle } from '../lib/app-groups.js';
import { groupByRelay, pathLabel } from '../lib/relay-groups.js';
import { useResource } from '../lib/use-resource.js';

export function ConnectedSdks({ environment }: { environment: string }) {
  const live = useLive();
  const list = useResource(() => api.get('/api/v1/environments/{env}/sdks', { params: { path: { env: environment } } }), [environment, live.tick]);
  if (list.error) return <p class="error">{list.error}</p>;
  if (!list.data) return null;
  const { items: sdks, version } = list.data;
  const current = sdks.filter((s) => s.appliedVersion !== null && s.appliedVersion >= version).length;
  return (
    <details class="sdks" data-testid="connected-sdks">
      <summary>
        {sdks.length === 0
          ? `No SDKs connected to ${environment}`
          : `${current} of ${sdks.length} connected SDK${sdks.length === 1 ? '' : 's'} on the latest version (${version}) of ${environment}`}
      </summary>
      {sdks.length > 0 && (
        <div class="table-wrap">
          <table class="small">
            <caption class="sr-only">SDKs connected to {environment} and the version each applied, by relay path and app</caption>
            <thead>
              <tr>
                <th scope="col">App</th>
                <th scope="col">SDK</th>
                <th scope="col">Connected</th>
                <th scope="col">Applied version</th>
              </tr>
            </thead>
            {groupByRelay(sdks, version).map((g) => (
              <tbody key={g.path.join('/')} data-testid="sdk-group" data-via={g.path.join(' → ')}>
                {/* Relays and the SDKs behind them (issue 13): one group per relay path; in it, one per app (issue 18). */}
                <tr class="sdk-group">
                  <th scope="rowgroup" colSpan={4}>
                    {pathLabel(g.path)}: {g.applied} of {g.sdks.length} on version {version}
                  </th>
                </tr>
                {groupByApp(g.sdks, version).map((a) => [
                  <tr key={`app:${a.label}`} class="sdk-app" data-testid="sdk-app">
                    <th colSpan={4} title={instancesTitle(a)}>
                      {a.label}: {a.applied} of {a.sdks.length} on version {version}
                    </th>
                  </tr>,
                  ...a.sdks.map((s) => (
                    <tr key={s.id}>
                      <td title={`SDK instance ${s.id}`}>{a.label}</td>
                      <td>{sdkLabel(s)}</td>
                      <td>{formatLocalTime(s.connectedAt)}</td>
                      <td class={s.appliedVersion === version ? '' : 'error'}>{s.appliedVersion ?? '–'}</td>
                    </tr>
                  )),
                ])}
              </tbody>
            ))}
          </table>
        </div>
      )}
    </details>
  );
}
