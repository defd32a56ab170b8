/**
 * "Compare environments" on the flag page: one flag's state side by side in every environment, the cells that differ
 * from the selected environment marked, and "Copy … to …" (the promote dialog: diff first, then the audited write).
 * The table (components/compare-table.tsx) is loaded when the section is opened, so the incident path never waits for it.
 */
import { useEffect, useState } from 'preact/hooks';
import { errorText } from '../lib/api.js';

type TableModule = typeof import('./compare-table.js');
let loading: Promise<TableModule> | null = null;

export function CompareEnvironments({
  flag,
  environment,
  environments,
  onCopied,
}: {
  flag: string;
  environment: string;
  environments: string[];
  onCopied: () => void;
}) {
  const [open, setOpen] = useState(false);
  const [mod, setMod] = useState<TableModule | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    if (!open || mod) return;
    loading ??= import('./compare-table.js');
    loading.then(setMod, (e: unknown) => {
      loading = null;
      setFailed(errorText(e));
    });
  }, [open]);
  return (
    <section aria-labelledby="compare-title" class="compare">
      <h2 id="compare-title">
        <button type="button" aria-expanded={open} aria-controls="compare-body" onClick={() => setOpen(!open)}>
          Compare environments
        </button>
      </h2>
      {open && (
        <div id="compare-body">
          {mod ? (
            <mod.CompareTable flag={flag} environment={environment} environments={environments} onCopied={onCopied} />
          ) : failed ? (
            <p class="error" role="alert">
              {failed}
            </p>
          ) : (
            <p class="muted">Loading…</p>
          )}
        </div>
      )}
    </section>
  );
}
