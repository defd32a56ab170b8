/**
 * The kill switch of one flag in one environment: asks for a reason, kills, then shows delivery progress. Revive
 * uses the same flow (a reason is optional there: undoing a kill is the safe direction).
 */
import { useCan } from '../lib/me.js';
import { useState } from 'preact/hooks';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import type { KillResult } from '../lib/types.js';
import { DeliveryProgress } from './delivery-progress.js';
import { Modal } from './modal.js';

export interface KillSwitchProps {
  flag: string;
  environment: string;
  enabled: boolean;
  /** Off because a kill switch was thrown (then the way back is "Revive"), rather than never turned on. */
  killed?: boolean;
  onDone?: () => void;
  compact?: boolean;
}

export function KillSwitch({ flag, environment, enabled, killed = true, onDone, compact }: KillSwitchProps) {
  const live = useLive();
  const can = useCan();
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<{ response: KillResult; sentAt: number } | null>(null);
  // Fixed when the dialog opens: the flag's state flips under it (that is the point), the dialog must not.
  const [action, setAction] = useState<'kill' | 'revive'>(enabled ? 'kill' : 'revive');
  const killing = action === 'kill';

  const close = () => {
    setOpen(false);
    setResult(null);
    setError(null);
    setReason('');
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    if (action === 'kill' && reason.trim() === '') return setError('Say why: the reason goes to the audit log and the incident timeline.');
    setBusy(true);
    setError(null);
    const sentAt = Date.now();
    try {
      const init = { params: { path: { key: flag, env: environment } }, body: reason.trim() ? { reason: reason.trim() } : {} };
      const response =
        action === 'kill'
          ? await api.post('/api/v1/flags/{key}/environments/{env}/kill', init)
          : await api.post('/api/v1/flags/{key}/environments/{env}/revive', init);
      setResult({ response, sentAt });
      live.refresh();
      onDone?.();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const back = killed ? 'Revive' : 'Turn on';
  // Hidden, not disabled, when the role may not throw this switch (the dialog stays while it shows a result).
  if (!open && !can(enabled ? 'killFlag' : 'reviveFlag', environment)) return null;
  const buttonLabel = enabled ? `Kill ${flag} in ${environment}` : `${back} ${flag} in ${environment}`;
  const title = killing ? `Kill ${flag} in ${environment}` : `${back} ${flag} in ${environment}`;
  return (
    <>
      <button
        type="button"
        class={enabled ? 'kill' : 'revive'}
        aria-label={buttonLabel}
        title={buttonLabel}
        onClick={() => {
          setAction(enabled ? 'kill' : 'revive');
          setOpen(true);
        }}
      >
        {enabled ? (compact ? 'Kill' : 'Kill switch') : back}
      </button>
      <Modal title={title} open={open} onClose={close} danger={killing}>
        {result ? (
          <div>
            <p>
              <strong>{flag}</strong> is{' '}
              {result.response.enabled ? (
                'serving its targeting again'
              ) : (
                <>
                  off: everyone gets <code>{result.response.offVariant}</code>
                </>
              )}{' '}
              in <strong>{environment}</strong>.
            </p>
            <DeliveryProgress
              environment={environment}
              version={result.response.environmentVersion}
              receipt={result.response.delivery}
              sentAt={result.sentAt}
            />
            <div class="actions">
              <button type="button" onClick={close} autofocus>
                Close
              </button>
            </div>
          </div>
        ) : (
          <form onSubmit={submit}>
            <p>
              {killing
                ? `Every evaluation of ${flag} in ${environment} will serve its off variant, at once, in every connected SDK.`
                : `${flag} will serve its targeting again in ${environment}.`}
            </p>
            <label for={`reason-${flag}-${environment}`}>Reason{killing ? '' : ' (optional)'}</label>
            <textarea
              id={`reason-${flag}-${environment}`}
              rows={2}
              maxLength={1000}
              value={reason}
              onInput={(e) => setReason((e.currentTarget as HTMLTextAreaElement).value)}
              placeholder={killing ? 'e.g. INC-1234: checkout errors after deploy' : ''}
              autofocus
            />
            {error && (
              <p class="error" role="alert">
                {error}
              </p>
            )}
            <div class="actions">
              <button type="button" onClick={close}>
                Cancel
              </button>
              <button type="submit" class={killing ? 'kill' : 'revive'} disabled={busy}>
                {busy ? 'Working…' : killing ? 'Kill flag' : `${back} flag`}
              </button>
            </div>
          </form>
        )}
      </Modal>
    </>
  );
}
