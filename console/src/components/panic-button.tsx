/**
 * The environment-wide panic button (kill-all) with a typed confirmation, the list of what it will kill and a way to
 * spare flags (the API's `except`), and its restore (revive-all). While a panic holds, a banner says since when, by
 * whom, why and what it killed, with the restore at hand; it stays until the restore, including after a reload (the
 * audit log says a panic is active).
 */
import { useCan } from '../lib/me.js';
import { useEffect, useState } from 'preact/hooks';
import { formatLocalTime } from '@aviary/api-client';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import type { AuditEntry, Flag, KillAllResult, ReviveAllResult } from '../lib/types.js';
import { DeliveryProgress } from './delivery-progress.js';
import { Modal } from './modal.js';

const isPanic = (action: string) => action === 'environment.kill-all';
const isRestore = (action: string) => action === 'environment.revive-all';

/** The panic holding an environment: its audit entry (who, when, why, what it killed), or null. */
export function usePanic(environment: string, tick: number, enabled: boolean): AuditEntry | null {
  const [panic, setPanic] = useState<AuditEntry | null>(null);
  // Whether the newest panic-related audit entry of this environment is a panic (then a restore is pending).
  useEffect(() => {
    if (!enabled) return;
    let stopped = false;
    api
      .get('/api/v1/audit', { params: { query: { environment, resourceType: 'environment', limit: 20 } } })
      .then((page) => {
        if (stopped) return;
        const last = page.entries.find((e) => isPanic(e.action) || isRestore(e.action));
        setPanic(last !== undefined && isPanic(last.action) ? last : null);
      })
      .catch(() => {});
    return () => {
      stopped = true;
    };
  }, [environment, tick, enabled]);
  return panic;
}

export type PanicMode = 'closed' | 'panic' | 'restore';

const killedBy = (entry: AuditEntry): string[] => {
  const after = entry.after as { killed?: unknown } | null;
  return Array.isArray(after?.killed) ? after.killed.map(String) : [];
};

/** The banner while `panic` holds `environment`. */
export function PanicBanner({ environment, panic, onRestore }: { environment: string; panic: AuditEntry | null; onRestore: (() => void) | null }) {
  if (!panic) return null;
  const killed = killedBy(panic);
  return (
    <div class="panic-banner" role="alert" data-testid="panic-banner">
      <strong>{environment} is in panic</strong> since {formatLocalTime(panic.at)}, by {panic.actor.name}
      {panic.reason ? ` (${panic.reason})` : ''}: {killed.length} flag{killed.length === 1 ? '' : 's'} killed
      {killed.length ? ` (${killed.join(', ')})` : ''}.{' '}
      {onRestore && (
        <button type="button" class="revive" onClick={onRestore}>
          Restore every flag it killed
        </button>
      )}
    </div>
  );
}

export function PanicButton({
  environment,
  panic,
  mode,
  setMode,
}: {
  environment: string;
  panic: AuditEntry | null;
  mode: PanicMode;
  setMode: (m: PanicMode) => void;
}) {
  const live = useLive();
  const can = useCan();
  const [confirmText, setConfirmText] = useState('');
  /** The flags a panic would kill now (on, live), and those the user spares. */
  const [candidates, setCandidates] = useState<string[] | null>(null);
  const [spared, setSpared] = useState<Set<string>>(new Set());
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<
    (({ kind: 'panic'; response: KillAllResult } | { kind: 'restore'; response: ReviveAllResult }) & { sentAt: number }) | null
  >(null);
  const panicActive = panic !== null;

  // Opening the panic dialog lists what it would kill (the flags on in this environment).
  useEffect(() => {
    if (mode !== 'panic') return;
    let stopped = false;
    setCandidates(null);
    setSpared(new Set());
    api
      .get('/api/v1/flags')
      .then((r) => {
        if (!stopped) setCandidates(r.flags.filter((f: Flag) => f.environments[environment]?.enabled).map((f: Flag) => f.key));
      })
      .catch((e: unknown) => !stopped && setError(errorText(e)));
    return () => {
      stopped = true;
    };
  }, [mode, environment]);

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
      const why = reason.trim() ? { reason: reason.trim() } : {};
      const path = { params: { path: { env: environment } } };
      setResult(
        mode === 'panic'
          ? {
              kind: 'panic',
              response: await api.post('/api/v1/environments/{env}/kill-all', {
                ...path,
                body: { ...why, ...(spared.size ? { except: [...spared] } : {}) },
              }),
              sentAt,
            }
          : { kind: 'restore', response: await api.post('/api/v1/environments/{env}/revive-all', { ...path, body: why }), sentAt },
      );
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
                {candidates === null ? (
                  <p class="muted">Listing the flags that are on…</p>
                ) : candidates.length === 0 ? (
                  <p class="muted">No flag is on in {environment}: there is nothing to kill.</p>
                ) : (
                  <fieldset class="spare">
                    <legend>
                      Will kill {candidates.length - spared.size} of {candidates.length} flags that are on (tick a flag to spare it)
                    </legend>
                    {candidates.map((k) => (
                      <label key={k} class="block">
                        <input
                          type="checkbox"
                          checked={spared.has(k)}
                          onChange={(e) => {
                            const on = (e.currentTarget as HTMLInputElement).checked;
                            setSpared((prev) => {
                              const next = new Set(prev);
                              if (on) next.add(k);
                              else next.delete(k);
                              return next;
                            });
                          }}
                        />{' '}
                        spare <code>{k}</code>
                      </label>
                    ))}
                  </fieldset>
                )}
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
