/**
 * "Promote to…" on the flag page (flags as code, CONTRACT §15): pick a target environment, see the field-level diff of
 * its state against this environment's (a dry run of POST /api/v1/flags/{key}/promote), then copy it with a reason.
 * The copy sends the target state's ETag from the dry run as If-Match, so a change made meanwhile is refused, not lost.
 */
import { useEffect, useState } from 'preact/hooks';
import type { Schemas } from '@aviary/api-client';
import { DiffTable } from './diff-table.js';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { Modal } from './modal.js';

type PromoteResult = Schemas['PromoteResult'];

export function PromotePanel({
  flag,
  environment,
  environments,
  onDone,
}: {
  flag: string;
  environment: string;
  environments: string[];
  onDone: () => void;
}) {
  const targets = environments.filter((e) => e !== environment);
  const [target, setTarget] = useState('');
  const [open, setOpen] = useState(false);
  if (targets.length === 0) return null;
  const chosen = targets.includes(target) ? target : targets[0]!;
  return (
    <div class="promote">
      <label for={`promote-target-${flag}`}>Promote to…</label>{' '}
      <select id={`promote-target-${flag}`} value={chosen} onChange={(e) => setTarget((e.currentTarget as HTMLSelectElement).value)}>
        {targets.map((t) => (
          <option key={t} value={t}>
            {t}
          </option>
        ))}
      </select>{' '}
      <button type="button" onClick={() => setOpen(true)}>
        Promote
      </button>
      {open && <PromoteDialog flag={flag} from={environment} to={chosen} onClose={() => setOpen(false)} onDone={onDone} />}
    </div>
  );
}

export function PromoteDialog({
  flag,
  from,
  to,
  onClose,
  onDone,
}: {
  flag: string;
  from: string;
  to: string;
  onClose: () => void;
  onDone: () => void;
}) {
  const live = useLive();
  const [preview, setPreview] = useState<{ data: PromoteResult; etag: string } | null>(null);
  const [loading, setLoading] = useState(false);
  const [reason, setReason] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<PromoteResult | null>(null);
  const [busy, setBusy] = useState(false);

  // The diff first: a dry run against the server's current states.
  useEffect(() => {
    let stale = false;
    setLoading(true);
    api
      .request('post', '/api/v1/flags/{key}/promote', { params: { path: { key: flag } }, body: { from, to, dryRun: true } })
      .then((r) => !stale && setPreview({ data: r.data, etag: r.etag ?? `"${r.data.etag}"` }))
      .catch((e: unknown) => !stale && setError(errorText(e)))
      .finally(() => !stale && setLoading(false));
    return () => {
      stale = true;
    };
  }, [flag, from, to]);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!preview) return;
    setBusy(true);
    setError(null);
    try {
      const res = await api.post('/api/v1/flags/{key}/promote', {
        params: { path: { key: flag }, header: { 'If-Match': preview.etag } },
        body: { from, to, dryRun: false, ...(reason.trim() ? { reason: reason.trim() } : {}) },
      });
      setDone(res);
      live.refresh();
      onDone();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const title = `Promote ${flag} from ${from} to ${to}`;
  const changes = preview?.data.changes ?? [];
  return (
    <Modal title={title} open onClose={onClose}>
      {done ? (
        <div>
          <p>
            <strong>{flag}</strong> in <strong>{to}</strong> now has the state it has in <strong>{from}</strong> ({done.etag}).
          </p>
          <div class="actions">
            <button type="button" onClick={onClose} autofocus>
              Close
            </button>
          </div>
        </div>
      ) : (
        <form onSubmit={submit}>
          {loading && <p class="muted">Comparing…</p>}
          {preview && changes.length === 0 && (
            <p class="muted">
              No change: {flag} in {to} already has the state it has in {from}.
            </p>
          )}
          {changes.length > 0 && (
            <DiffTable aria-label={`Changes to ${flag} in ${to}`} changes={changes} before={`Now in ${to}`} after={`From ${from}`} missing="" />
          )}
          {changes.length > 0 && (
            <>
              <label for={`promote-reason-${flag}`}>Reason (optional)</label>
              <textarea
                id={`promote-reason-${flag}`}
                rows={2}
                maxLength={1000}
                value={reason}
                onInput={(e) => setReason((e.currentTarget as HTMLTextAreaElement).value)}
              />
            </>
          )}
          {error && (
            <p class="error" role="alert">
              {error}
            </p>
          )}
          <div class="actions">
            <button type="button" onClick={onClose}>
              Cancel
            </button>
            {changes.length > 0 && (
              <button type="submit" disabled={busy}>
                {busy ? 'Working…' : `Promote to ${to}`}
              </button>
            )}
          </div>
        </form>
      )}
    </Modal>
  );
}
