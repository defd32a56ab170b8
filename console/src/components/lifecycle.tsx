/**
 * Flag lifecycle in the console (CONTRACT §15): a badge per flag state, the evidence behind it, and the "Ready to
 * remove" view of the flags whose code can go (launched: one variant to every context for 7 days; inactive: not
 * evaluated for 7 days), from what SDKs reported.
 */
import { formatLocalTime } from '@aviary/api-client';
import { flagPath, onLinkClick } from '../lib/router.js';
import type { EnvironmentSummary, Flag } from '../lib/types.js';

type Lifecycle = NonNullable<EnvironmentSummary['lifecycle']>;

export const LIFECYCLE_STATUSES = ['new', 'active', 'launched', 'inactive'] as const;

const TITLES: Record<Lifecycle['status'], string> = {
  new: 'created in the last 7 days, never evaluated',
  active: 'evaluated in the last 7 days',
  launched: 'served a single variant to every context for the last 7 days',
  inactive: 'not evaluated for 7 days',
};

export function LifecycleBadge({ lifecycle }: { lifecycle: Lifecycle | undefined }) {
  if (!lifecycle) return null;
  return (
    <span class={`badge lifecycle lifecycle-${lifecycle.status}`} title={TITLES[lifecycle.status]}>
      {lifecycle.status}
    </span>
  );
}

/** Why the flag is ready to remove, in words. */
export function lifecycleEvidence(l: Lifecycle): string {
  if (l.status === 'launched') return `served only \`${l.variant}\` to every context since ${formatLocalTime(l.since!)}`;
  if (l.status === 'inactive') return l.lastEvaluatedAt ? `not evaluated since ${formatLocalTime(l.lastEvaluatedAt)}` : 'never evaluated';
  if (l.status === 'new') return 'new, never evaluated';
  return 'evaluated in the last 7 days';
}

/** The launched and inactive flags of `environment`, with the evidence. */
export function ReadyToRemove({ flags, environment }: { flags: Flag[]; environment: string }) {
  const ready = flags.filter((f) => {
    const s = f.environments[environment]?.lifecycle?.status;
    return s === 'launched' || s === 'inactive';
  });
  if (ready.length === 0)
    return (
      <p class="muted">
        No flag is ready to remove in {environment}: every flag was evaluated with more than one variant in the last 7 days, or is new.
      </p>
    );
  return (
    <div class="table-wrap">
      <table class="flags ready-to-remove" data-testid="ready-to-remove">
        <caption class="sr-only">Flags ready to remove in {environment}</caption>
        <thead>
          <tr>
            <th scope="col">Flag</th>
            <th scope="col">Status</th>
            <th scope="col">Evidence</th>
            <th scope="col">Last evaluated</th>
          </tr>
        </thead>
        <tbody>
          {ready.map((f) => {
            const l = f.environments[environment]!.lifecycle!;
            return (
              <tr key={f.key} data-flag={f.key}>
                <th scope="row">
                  <a href={flagPath(f.key)} onClick={onLinkClick}>
                    {f.key}
                  </a>
                </th>
                <td>
                  <LifecycleBadge lifecycle={l} />
                </td>
                <td class="evidence">{lifecycleEvidence(l)}</td>
                <td class="last-evaluated">{l.lastEvaluatedAt ? formatLocalTime(l.lastEvaluatedAt) : 'never'}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
