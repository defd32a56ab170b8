/**
 * The environment-wide panic button (kill-all) with a typed confirmation, and its restore (revive-all). The restore
 * stays offered after a panic until it is used, including after a reload (the audit log says a panic is active).
 */
import { useCan } from '../lib/me.js';
import { useEffect, useState } from 'preact/hooks';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import type { KillAllResult, ReviveAllResult } from '../lib/types.js';
import { DeliveryProgress } from './delivery-progress.js';
import { Modal } from './modal.js';

const isPanic = (action: string) => action === 'environment.kill-all';
const isRestore = (action: string) => action === 'environment.revive-all';

export function PanicButton({ environment }: { environment: string }) {
  const live = useLive();
  const can = useCan();
  const [mode, setMode] = useState<'closed' | 'panic' | 'restore'>('closed');
  const [confirmText, setConfirmText] = useState('');
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<
    (({ kind: 'panic'; response: KillAllResult } | { kind: 'restore'; response: ReviveAllResult }) & { sentAt: number }) | null
  >(null);
  const [panicActive, setPanicActive] = useState(false);

  // Whether the newest panic-related audit entry of this environment is a panic (then a restore is pending).
  useEffect(() => {
    let stopped = false;
    api
      .get('/api/v1/audit', { params: { query: { environment, resourceType: 'environment', limit: 20 } } })
      .then((page) => {
        if (stopped) return;
        const last = page.entries.find((e) => isPanic(e.action) || isRestore(e.action));
        setPanicActive(last !== undefined && isPanic(last.action));
      })
      .catch(() => {});
    return () => {
      stopped = true;
    };
  }, [environment, live.tick]);

  const close = () => {
    setMode('closed');
    setConfirmText('');
    setReason('');
    setError(null);
    setResult(null);
  };

  const run = async (e: Event) => {
    e.preventDefault();
    if (mode === 'panic' && confirmText !== environment) return setError(`Type ${environment} to confirm.`);
    setBusy(true);
    setError(null);
    const sentAt = Date.now();
    try {
      const init = { params: { path: { env: environment } }, body: reason.trim() ? { reason: reason.trim() } : {} };
      setResult(
        mode === 'panic'
          ? { kind: 'panic', response: await api.post('/api/v1/environments/{env}/kill-all', init), sentAt }
          : { kind: 'restore', response: await api.post('/api/v1/environments/{env}/revive-all', init), sentAt },
      );
      setPanicActive(mode === 'panic');
      live.refresh();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="panic">
      {panicActive && can('reviveAll', environment) && (
        <button type="button" class="revive" onClick={() => setMode('restore')}>
          Restore {environment}
        </button>
      )}
      {can('killAll', environment) && (
        <button type="button" class="kill" onClick={() => setMode('panic')}>
          Panic: kill all in {environment}
        </button>
      )}
      <Modal
        title={mode === 'panic' ? `Kill every flag in ${environment}` : `Restore ${environment}`}
        open={mode !== 'closed'}
        onClose={close}
        danger={mode === 'panic'}
      >
        {result ? (
          <div>
            <p>
              {result.kind === 'panic' ? `Killed ${result.response.killed.length}` : `Restored ${result.response.revived.length}`} flag(s) in{' '}
              <strong>{environment}</strong>
              {result.kind === 'panic' && result.response.spared.length ? ` (spared: ${result.response.spared.join(', ')})` : ''}.
            </p>
            <DeliveryProgress environment={environment} version={result.response.environmentVersion} sentAt={result.sentAt} />
            <div class="actions">
              <button type="button" onClick={close} autofocus>
                Close
              </button>
            </div>
          </div>
        ) : (
          <form onSubmit={run}>
            {mode === 'panic' ? (
              <>
                <p>
                  Every flag in <strong>{environment}</strong> will serve its off variant. Each flag's current state is remembered; <em>Restore</em>{' '}
                  puts every one back exactly.
                </p>
                <label for="panic-confirm">Type the environment name to confirm</label>
                <input
                  id="panic-confirm"
                  autocomplete="off"
                  value={confirmText}
                  onInput={(e) => setConfirmText((e.currentTarget as HTMLInputElement).value)}
                  autofocus
                />
              </>
            ) : (
              <p>Every flag killed by the last panic returns to its state before it.</p>
            )}
            <label for="panic-reason">Reason</label>
            <input id="panic-reason" maxLength={1000} value={reason} onInput={(e) => setReason((e.currentTarget as HTMLInputElement).value)} />
            {error && (
              <p class="error" role="alert">
                {error}
              </p>
            )}
            <div class="actions">
              <button type="button" onClick={close}>
                Cancel
              </button>
              <button type="submit" class={mode === 'panic' ? 'kill' : 'revive'} disabled={busy || (mode === 'panic' && confirmText !== environment)}>
                {busy ? 'Working…' : mode === 'panic' ? 'Kill everything' : 'Restore'}
              </button>
            </div>
          </form>
        )}
      </Modal>
    </div>
  );
}
