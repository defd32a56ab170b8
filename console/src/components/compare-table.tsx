/**
 * The table of "Compare environments" (loaded by components/compare-environments.tsx when opened): one flag's state
 * side by side in every environment (kill switch, off variant, prerequisites, targets, each rule by id, fallthrough),
 * each cell that differs from the selected environment highlighted and saying so in text ("differs from production").
 * "Copy … to …" opens the promote dialog (components/promote-panel.tsx): the diff from a dry run first, then the
 * audited write (POST /api/v1/flags/{key}/promote). Hidden when the role may not promote to that environment.
 */
import { useState } from 'preact/hooks';
import { api } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { useCan } from '../lib/me.js';
import type { Condition, FlagStateResource, Serve } from '../lib/types.js';
import { useResource } from '../lib/use-resource.js';
import { PromoteDialog } from './promote-panel.js';

export function serveText(s: Serve): string {
  if ('variant' in s) return s.variant;
  const by = s.rollout.bucketBy && s.rollout.bucketBy !== 'key' ? ` by ${s.rollout.bucketBy}` : '';
  return `rollout ${s.rollout.weights.map((w) => `${w.variant} ${w.percent}%`).join(', ')}${by}`;
}

function conditionText(c: Condition): string {
  const not = c.negate ? 'not ' : '';
  if ('segment' in c) return `${not}in segment ${c.segment}`;
  return `${c.attribute} ${not}${c.op}${c.values?.length ? ` ${c.values.map((v) => JSON.stringify(v)).join(', ')}` : ''}`;
}

interface Row {
  key: string;
  label: string;
  /** Cell text per environment ('—' when absent). */
  cells: Record<string, string>;
}

/** The comparison's rows: one per member of the state, one per target variant and one per rule id in any environment. */
export function compareRows(states: Record<string, FlagStateResource | null>, order: string[]): Row[] {
  const envs = order.filter((e) => states[e]);
  const row = (key: string, label: string, text: (s: FlagStateResource) => string): Row => ({
    key,
    label,
    cells: Object.fromEntries(envs.map((e) => [e, text(states[e]!)])),
  });
  const rows: Row[] = [
    row('state', 'Kill switch', (s) => (s.enabled ? 'on' : s.killedAt ? 'killed' : 'off')),
    row('off', 'Off variant', (s) => s.offVariant),
    row('prereq', 'Prerequisites', (s) =>
      s.prerequisites?.length ? s.prerequisites.map((p) => `${p.flag} is ${p.variants.join(' or ')}`).join('; ') : 'none',
    ),
  ];
  const variants = [...new Set(envs.flatMap((e) => states[e]!.targets.map((t) => t.variant)))];
  for (const v of variants)
    rows.push(
      row(`target:${v}`, `Targets → ${v}`, (s) => {
        const keys = s.targets.filter((t) => t.variant === v).flatMap((t) => t.keys);
        return keys.length ? keys.join(', ') : '—';
      }),
    );
  const ruleIds = [...new Set(envs.flatMap((e) => states[e]!.rules.map((r) => r.id)))];
  for (const id of ruleIds)
    rows.push(
      row(`rule:${id}`, `Rule ${id}`, (s) => {
        const i = s.rules.findIndex((r) => r.id === id);
        if (i < 0) return '—';
        const r = s.rules[i]!;
        const when = r.conditions.length ? r.conditions.map(conditionText).join(' and ') : 'everyone';
        return `#${i + 1}: if ${when} → ${serveText(r.serve)}`;
      }),
    );
  rows.push(row('fallthrough', 'Fallthrough', (s) => serveText(s.fallthrough)));
  return rows;
}

export function CompareTable({
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
  const live = useLive();
  const can = useCan();
  const [copyTo, setCopyTo] = useState<string | null>(null);
  const states = useResource(
    () =>
      Promise.all(
        environments.map((env) =>
          api.get('/api/v1/flags/{key}/environments/{env}', { params: { path: { key: flag, env } } }).then(
            (s) => [env, s] as const,
            () => [env, null] as const,
          ),
        ),
      ).then((pairs) => Object.fromEntries(pairs) as Record<string, FlagStateResource | null>),
    [flag, environments.join(','), live.tick],
  );
  if (states.error)
    return (
      <p class="error" role="alert">
        {states.error}
      </p>
    );
  if (!states.data) return <p class="muted">Loading…</p>;
  const envs = environments.filter((e) => states.data![e]);
  const rows = compareRows(states.data, envs);
  const base = envs.includes(environment) ? environment : envs[0];
  const targets = envs.filter((e) => e !== base && can('promoteFlag', e));
  const differing = base ? envs.filter((e) => e !== base && rows.some((r) => r.cells[e] !== r.cells[base])) : [];
  return (
    <div>
      <p class="muted small">
        Cells that differ from <strong>{base}</strong> are highlighted.{' '}
        {differing.length === 0 ? 'Every environment has the same state.' : `Differs in: ${differing.join(', ')}.`}
      </p>
      <div class="table-scroll">
        <table aria-label={`${flag} across environments`} class="compare-table">
          <thead>
            <tr>
              <th scope="col">Member</th>
              {envs.map((e) => (
                <th scope="col" key={e} class={e === base ? 'current' : ''}>
                  {e}
                  {e === base && <span class="muted small"> (selected)</span>} <span class="muted small">v{states.data![e]!.version}</span>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.key}>
                <th scope="row">{r.label}</th>
                {envs.map((e) => {
                  const differs = base !== undefined && e !== base && r.cells[e] !== r.cells[base];
                  return (
                    <td key={e} class={differs ? 'differs' : e === base ? 'current' : ''} title={differs ? `differs from ${base}` : undefined}>
                      <code>{r.cells[e]}</code>
                      {differs && <span class="sr-only"> (differs from {base})</span>}
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {base && targets.length > 0 && (
        <p class="actions-inline">
          {targets.map((t) => (
            <button type="button" key={t} onClick={() => setCopyTo(t)}>
              Copy {base} to {t}…
            </button>
          ))}
        </p>
      )}
      {base && copyTo && (
        <PromoteDialog
          flag={flag}
          from={base}
          to={copyTo}
          onClose={() => setCopyTo(null)}
          onDone={() => {
            states.reload();
            onCopied();
          }}
        />
      )}
    </div>
  );
}
