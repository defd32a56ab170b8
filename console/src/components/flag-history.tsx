/**
 * The history tab of a flag page: every version of the flag's state in one environment (newest first, with who, when,
 * which action and why), the diff between any two selected versions (the API's, as JSON pointers), and a Revert
 * button per version that asks for confirmation, writes that version's state as a new one and follows its delivery.
 */
import { useCan } from '../lib/me.js';
import { useEffect, useState } from 'preact/hooks';
import { formatLocalTime, formatTime } from '@aviary/api-client';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import type { FlagStateWriteResult, HistoryDiff, HistoryEntry } from '../lib/types.js';
import { DiffTable } from './diff-table.js';
import { useResource } from '../lib/use-resource.js';
import { DeliveryProgress } from './delivery-progress.js';
import { Modal } from './modal.js';

const PAGE = 50;

/** A state in a few words: on/off and what it serves. */
function summary(e: HistoryEntry): string {
  const s = e.state;
  const serve =
    'variant' in s.fallthrough ? s.fallthrough.variant : s.fallthrough.rollout.weights.map((w) => `${w.variant} ${w.percent}%`).join(' / ');
  return `${s.enabled ? 'on' : `off (${s.offVariant})`}, ${s.rules.length} rule${s.rules.length === 1 ? '' : 's'}, fallthrough ${serve}`;
}

export function FlagHistory({ flag, environment, onReverted }: { flag: string; environment: string; onReverted: () => void }) {
  const can = useCan();
  const live = useLive();
  const path = { key: flag, env: environment };
  // Older pages the person asked for, appended to the newest page (which follows live changes).
  const [older, setOlder] = useState<HistoryEntry[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const newest = useResource(
    () => api.get('/api/v1/flags/{key}/environments/{env}/history', { params: { path, query: { limit: PAGE } } }),
    [flag, environment, live.tick],
  );
  useEffect(() => {
    setOlder([]);
    setCursor(null);
  }, [flag, environment]);
  const entries = [...(newest.data?.entries ?? []), ...older.filter((o) => !newest.data?.entries.some((n) => n.version === o.version))];
  const next = older.length ? cursor : (newest.data?.nextCursor ?? null);
  const current = entries[0]?.version;

  // Selected versions to compare (default: what the last write changed).
  const [from, setFrom] = useState<number | null>(null);
  const [to, setTo] = useState<number | null>(null);
  const fromV = from ?? (current !== undefined ? Math.max(current - 1, 1) : null);
  const toV = to ?? current ?? null;
  const [diff, setDiff] = useState<HistoryDiff | null>(null);
  const [diffError, setDiffError] = useState<string | null>(null);
  useEffect(() => {
    if (fromV === null || toV === null) return;
    let stale = false;
    api.get('/api/v1/flags/{key}/environments/{env}/history/diff', { params: { path, query: { from: fromV, to: toV } } }).then(
      (d) => {
        if (stale) return;
        setDiff(d);
        setDiffError(null);
      },
      (e: unknown) => {
        if (!stale) setDiffError(errorText(e));
      },
    );
    return () => {
      stale = true;
    };
  }, [flag, environment, fromV, toV]);

  const loadOlder = async () => {
    if (!next) return;
    const page = await api.get('/api/v1/flags/{key}/environments/{env}/history', { params: { path, query: { limit: PAGE, cursor: next } } });
    setOlder((o) => [...o, ...page.entries]);
    setCursor(page.nextCursor);
  };

  const [reverting, setReverting] = useState<HistoryEntry | null>(null);

  if (newest.error)
    return (
      <p class="error" role="alert">
        {newest.error}
      </p>
    );
  if (!newest.data) return <p class="muted">Loading…</p>;
  return (
    <div class="history">
      <h2 id="history-title">
        History of {flag} in {environment}
      </h2>
      <table aria-labelledby="history-title" class="history">
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">When</th>
            <th scope="col">Who</th>
            <th scope="col">Action</th>
            <th scope="col">State</th>
            <th scope="col">Reason</th>
            <th scope="col">From</th>
            <th scope="col">To</th>
            <th scope="col">
              <span class="sr-only">Revert</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {entries.map((e) => (
            <tr key={e.version}>
              <th scope="row">v{e.version}</th>
              <td>
                <time dateTime={formatTime(e.at)}>{formatLocalTime(e.at)}</time>
              </td>
              <td>{e.actor.name}</td>
              <td>
                <code>{e.action}</code>
              </td>
              <td>{summary(e)}</td>
              <td>{e.reason ?? ''}</td>
              <td>
                <input
                  type="radio"
                  name={`diff-from-${flag}-${environment}`}
                  aria-label={`Compare from v${e.version}`}
                  checked={fromV === e.version}
                  onChange={() => setFrom(e.version)}
                />
              </td>
              <td>
                <input
                  type="radio"
                  name={`diff-to-${flag}-${environment}`}
                  aria-label={`Compare to v${e.version}`}
                  checked={toV === e.version}
                  onChange={() => setTo(e.version)}
                />
              </td>
              <td>
                {e.version !== current && can('revertFlagState', environment) && (
                  <button type="button" aria-label={`Revert ${flag} in ${environment} to v${e.version}`} onClick={() => setReverting(e)}>
                    Revert
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {next && (
        <p>
          <button type="button" onClick={() => void loadOlder()}>
            Older versions
          </button>
        </p>
      )}
      {diffError && (
        <p class="error" role="alert">
          {diffError}
        </p>
      )}
      {diff && (
        <>
          <h3 id="diff-title">
            Changes from v{diff.from.version} to v{diff.to.version}
          </h3>
          {diff.changes.length === 0 ? (
            <p class="muted">No change: the two versions hold the same state.</p>
          ) : (
            <DiffTable
              aria-labelledby="diff-title"
              changes={diff.changes}
              before={`Before (v${diff.from.version})`}
              after={`After (v${diff.to.version})`}
              missing="—"
            />
          )}
        </>
      )}
      {reverting && (
        <RevertDialog
          flag={flag}
          environment={environment}
          entry={reverting}
          onClose={() => setReverting(null)}
          onDone={() => {
            newest.reload();
            onReverted();
          }}
        />
      )}
    </div>
  );
}

function RevertDialog({
  flag,
  environment,
  entry,
  onClose,
  onDone,
}: {
  flag: string;
  environment: string;
  entry: HistoryEntry;
  onClose: () => void;
  onDone: () => void;
}) {
  const live = useLive();
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<{ response: FlagStateWriteResult; sentAt: number } | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const sentAt = Date.now();
    try {
      const response = await api.post('/api/v1/flags/{key}/environments/{env}/revert', {
        params: { path: { key: flag, env: environment } },
        body: { version: entry.version, ...(reason.trim() ? { reason: reason.trim() } : {}) },
      });
      setResult({ response, sentAt });
      live.refresh();
      onDone();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal title={`Revert ${flag} in ${environment} to v${entry.version}`} open onClose={onClose}>
      {result ? (
        <div>
          <p>
            <strong>{flag}</strong> in <strong>{environment}</strong> now holds the state of v{entry.version}, as v{result.response.version}.
          </p>
          <DeliveryProgress environment={environment} version={result.response.environmentVersion} sentAt={result.sentAt} />
          <div class="actions">
            <button type="button" onClick={onClose} autofocus>
              Close
            </button>
          </div>
        </div>
      ) : (
        <form onSubmit={submit}>
          <p>
            Every connected SDK will evaluate {flag} in {environment} as it did at v{entry.version} ({summary(entry)}). This is a new version,
            recorded in the audit log.
          </p>
          <label for={`revert-reason-${flag}-${environment}`}>Reason (optional)</label>
          <textarea
            id={`revert-reason-${flag}-${environment}`}
            rows={2}
            maxLength={1000}
            value={reason}
            onInput={(e) => setReason((e.currentTarget as HTMLTextAreaElement).value)}
            autofocus
          />
          {error && (
            <p class="error" role="alert">
              {error}
            </p>
          )}
          <div class="actions">
            <button type="button" onClick={onClose}>
              Cancel
            </button>
            <button type="submit" disabled={busy}>
              {busy ? 'Working…' : `Revert to v${entry.version}`}
            </button>
          </div>
        </form>
      )}
    </Modal>
  );
}
