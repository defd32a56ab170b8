/**
 * "New flag" on the flag list, for roles that may create flags (`createFlag`): the form (components/flag-form.tsx,
 * loaded on first use) in a dialog; a created flag opens on its own page.
 */
import { useState } from 'preact/hooks';
import { errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { useCan } from '../lib/me.js';
import { flagPath, navigate } from '../lib/router.js';
import { loadFlagForm } from './flag-definition-editor.js';
import { Modal } from './modal.js';

export function NewFlagButton() {
  const can = useCan();
  const live = useLive();
  const [form, setForm] = useState<Awaited<ReturnType<typeof loadFlagForm>> | null>(null);
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (!can('createFlag')) return null;
  return (
    <>
      <button
        type="button"
        onClick={() =>
          loadFlagForm().then(
            (m) => {
              setForm(m);
              setOpen(true);
            },
            (e: unknown) => setError(errorText(e)),
          )
        }
      >
        New flag
      </button>
      {error && (
        <span class="error" role="alert">
          {error}
        </span>
      )}
      <Modal title="New flag" open={open} onClose={() => setOpen(false)}>
        {form && (
          <form.CreateFlagForm
            onCancel={() => setOpen(false)}
            onCreated={(f) => {
              setOpen(false);
              live.refresh();
              navigate(flagPath(f.key));
            }}
          />
        )}
      </Modal>
    </>
  );
}
