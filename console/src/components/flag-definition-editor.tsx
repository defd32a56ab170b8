/**
 * A flag's definition on its page (issue 18): "Edit definition" (the form of components/flag-form.tsx, loaded on
 * first use), "Archive flag" (`DELETE /api/v1/flags/{key}`: SDKs stop seeing it, states and history are kept) and
 * "Un-archive flag" (`PATCH {"archived": false}`), each with `If-Match: "r<revision>"` and each shown only when the
 * role may do it (`updateFlag`, `deleteFlag`).
 */
import { useState } from 'preact/hooks';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { useCan } from '../lib/me.js';
import type { Flag } from '../lib/types.js';
import { Modal } from './modal.js';

type FormModule = typeof import('./flag-form.js');
let loading: Promise<FormModule> | undefined;
/** The form module, fetched once, when a form is first opened. */
export const loadFlagForm = () => (loading ??= import('./flag-form.js'));

export function FlagDefinitionActions({ flag, onChanged }: { flag: Flag; onChanged: () => void }) {
  const can = useCan();
  const live = useLive();
  const [form, setForm] = useState<FormModule | null>(null);
  const [editing, setEditing] = useState(false);
  const [archiving, setArchiving] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const done = () => {
    live.refresh();
    onChanged();
  };
  const edit = async () => {
    setError(null);
    try {
      setForm(await loadFlagForm());
      setEditing(true);
    } catch (e) {
      setError(errorText(e));
    }
  };
  const write = async (archive: boolean) => {
    setBusy(true);
    setError(null);
    const init = { params: { path: { key: flag.key }, header: { 'If-Match': `"r${flag.revision}"` } } };
    try {
      if (archive) await api.del('/api/v1/flags/{key}', init);
      else await api.patch('/api/v1/flags/{key}', { ...init, body: { archived: false } });
      setArchiving(false);
      done();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="definition-actions">
      {flag.archived && (
        <p class="notice" role="note">
          <strong>{flag.key}</strong> is archived: SDKs do not see it (they serve their defaults). Its states and history are kept.
        </p>
      )}
      <div class="actions">
        {can('updateFlag') && !editing && (
          <button type="button" onClick={() => void edit()}>
            Edit definition
          </button>
        )}
        {flag.archived
          ? can('updateFlag') && (
              <button type="button" disabled={busy} onClick={() => void write(false)}>
                Un-archive flag
              </button>
            )
          : can('deleteFlag') && (
              <button
                type="button"
                class="kill"
                onClick={() => {
                  setError(null);
                  setArchiving(true);
                }}
              >
                Archive flag
              </button>
            )}
      </div>
      {error && !archiving && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {editing && form && (
        <form.DefinitionForm
          latest={flag}
          onCancel={() => setEditing(false)}
          onSaved={() => {
            setEditing(false);
            done();
          }}
        />
      )}
      <Modal title={`Archive ${flag.key}`} open={archiving} onClose={() => setArchiving(false)} danger>
        <p>
          SDKs in every environment stop seeing <strong>{flag.key}</strong> and serve the default in their code. Its states and history are kept, and
          un-archiving brings it back as it was.
        </p>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <div class="actions">
          <button type="button" onClick={() => setArchiving(false)}>
            Cancel
          </button>
          <button type="button" class="kill" disabled={busy} onClick={() => void write(true)}>
            {busy ? 'Archiving…' : 'Archive'}
          </button>
        </div>
      </Modal>
    </div>
  );
}
