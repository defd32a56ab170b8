/**
 * One flag: definition and variants, state in each environment with its kill switch, the flags that require it, the
 * targeting editor for the selected environment (prerequisites, targets, rules, fallthrough) with a live preview of
 * re-assignment, and a warning when a change would move contexts out of a running canary. A History tab lists every
 * version of the state in the selected environment, diffs two of them and reverts to one (components/flag-history.tsx);
 * the scheduled changes of the flag in that environment are listed above it (components/schedules-panel.tsx); "Promote to…"
 * copies this environment's state to another after showing the diff (components/promote-panel.tsx).
 */
import { useCan } from '../lib/me.js';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { validateFlagState, type FlagDefinition, type FlagState as CoreFlagState, type Segment as CoreSegment } from '@aviary/sdk/core';
import {
  attributesUsed,
  ConditionEditor,
  type ConditionIssue,
  type SampleAttribute,
  SampleAttributesEditor,
} from '../components/condition-editor.js';
import { ExplainPanel } from '../components/explain-panel.js';
import { FlagDefinitionActions } from '../components/flag-definition-editor.js';
import { FlagHistory } from '../components/flag-history.js';
import { KillSwitch } from '../components/kill-switch.js';
import { PromotePanel } from '../components/promote-panel.js';
import { CompareEnvironments } from '../components/compare-environments.js';
import { SchedulesPanel } from '../components/schedules-panel.js';
import { TriggersPanel } from '../components/triggers-panel.js';
import { ServeEditor } from '../components/serve-editor.js';
import { isChangeRequest } from '@aviary/api-client';
import { api, ApiError, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { previewReassignment, type PreviewResult } from '../lib/preview.js';
import { canaryPath, flagPath, onLinkClick } from '../lib/router.js';
import type { Flag, FlagState, FlagStateResource, Prerequisite, Rule, Segment } from '../lib/types.js';
import { useResource } from '../lib/use-resource.js';
import { StateBadge } from './flags-page.js';
import { canaryStateLabel } from '../lib/labels.js';

const clone = <T,>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

export function FlagPage({ flagKey, environment, environments }: { flagKey: string; environment: string; environments: string[] }) {
  const live = useLive();
  const canDo = useCan();
  const [tab, setTab] = useState<'targeting' | 'history' | 'explain'>('targeting');
  const path = { key: flagKey, env: environment };
  const flag = useResource(() => api.get('/api/v1/flags/{key}', { params: { path: { key: flagKey } } }), [flagKey, live.tick]);
  const canary = useResource(
    () =>
      api
        .get('/api/v1/flags/{key}/environments/{env}/canary', { params: { path } })
        .catch((e: unknown) => (e instanceof ApiError && e.status === 404 ? null : Promise.reject(e))),
    [flagKey, environment, live.tick],
  );
  const segments = useResource(() => api.get('/api/v1/segments'), [live.tick]);
  // Every live flag: what a prerequisite may name, and (their `requires` per environment) which flags require this one.
  const allFlags = useResource(() => api.get('/api/v1/flags'), [live.tick]);
  // The full state, with the ETag the editor sends back as If-Match (so a concurrent change is refused, not lost).
  const full = useResource(
    () => api.request('get', '/api/v1/flags/{key}/environments/{env}', { params: { path } }),
    [flagKey, environment, live.tick],
  );

  if (flag.error)
    return (
      <p class="error" role="alert">
        {flag.error}
      </p>
    );
  if (!flag.data) return <p class="muted">Loading…</p>;
  const f = flag.data;
  const state = full.data?.data.environment === environment ? full.data.data : null;
  const envs = environments.length ? environments : Object.keys(f.environments);
  const c = canary.data;
  const canaryActive = c !== null && c !== undefined && (c.state === 'running' || c.state === 'paused');
  const others = (allFlags.data?.flags ?? []).filter((o) => o.key !== f.key);
  const requiredBy = others.filter((o) => o.environments[environment]?.requires?.includes(f.key)).map((o) => o.key);

  return (
    <section aria-labelledby="flag-title">
      <div class="page-head">
        <h1 id="flag-title">
          {f.key} <span class="kind">{f.kind}</span>
        </h1>
        <a href={canaryPath(f.key)} onClick={onLinkClick} class="button">
          {c ? `Canary in ${environment}: ${canaryStateLabel(c.state)}` : `Canary in ${environment}`}
        </a>
      </div>
      {f.description && <p>{f.description}</p>}
      {f.tags.length > 0 && (
        <p>
          {f.tags.map((t) => (
            <span class="tag" key={t}>
              {t}
            </span>
          ))}
        </p>
      )}
      <FlagDefinitionActions
        flag={f}
        onChanged={() => {
          flag.reload();
          full.reload();
        }}
      />
      <div class="grid2">
        <div>
          <h2 id="variants-title">Variants</h2>
          <table aria-labelledby="variants-title">
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Value</th>
              </tr>
            </thead>
            <tbody>
              {f.variants.map((v) => (
                <tr key={v.key}>
                  <th scope="row">{v.key}</th>
                  <td>
                    <code>{JSON.stringify(v.value)}</code>
                    {v.description && <div class="muted small">{v.description}</div>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <div>
          <h2 id="environments-title">Environments</h2>
          <table aria-labelledby="environments-title">
            <tbody>
              {envs.map((e) => {
                const s = f.environments[e];
                return (
                  <tr key={e} class={e === environment ? 'current' : ''}>
                    <th scope="row">{e}</th>
                    <td>
                      <StateBadge summary={s} />
                    </td>
                    <td class="muted small">{s ? `v${s.version}` : ''}</td>
                    <td>
                      {s && (
                        <KillSwitch
                          flag={f.key}
                          environment={e}
                          enabled={s.enabled}
                          killed={s.killedAt !== null}
                          onDone={() => {
                            flag.reload();
                            full.reload();
                          }}
                          compact
                        />
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </div>
      <section aria-labelledby="required-by-title">
        <h2 id="required-by-title">Required by in {environment}</h2>
        {requiredBy.length === 0 ? (
          <p class="muted" data-testid="required-by">
            No flag requires this one here.
          </p>
        ) : (
          <p data-testid="required-by">
            {requiredBy.map((k, i) => (
              <span key={k}>
                {i > 0 && ', '}
                <a href={flagPath(k)} onClick={onLinkClick}>
                  {k}
                </a>
              </span>
            ))}{' '}
            <span class="muted small">(killing this flag turns them off; it cannot be archived while they require it)</span>
          </p>
        )}
      </section>
      {canaryActive && (
        <p class="notice" role="note">
          A canary is {canaryStateLabel(c!.state)} in {environment}: <strong>{c!.canary}</strong> against <strong>{c!.control}</strong> at{' '}
          {c!.percent}%. It manages this flag's targeting; edits that move contexts out of it are flagged below.
        </p>
      )}
      <SchedulesPanel
        flagKey={f.key}
        environment={environment}
        onChanged={() => {
          flag.reload();
          full.reload();
        }}
      />
      <TriggersPanel flagKey={f.key} environment={environment} />
      {canDo('promoteFlag') && (
        <PromotePanel
          flag={f.key}
          environment={environment}
          environments={envs}
          onDone={() => {
            flag.reload();
            full.reload();
          }}
        />
      )}
      <CompareEnvironments
        flag={f.key}
        environment={environment}
        environments={envs}
        onCopied={() => {
          flag.reload();
          full.reload();
        }}
      />
      <div role="tablist" aria-label={`${f.key} in ${environment}`} class="tabs">
        {(['targeting', 'history', 'explain'] as const).map((t) => (
          <button
            type="button"
            role="tab"
            key={t}
            id={`tab-${t}`}
            aria-selected={tab === t}
            aria-controls={t !== 'targeting' && tab === t ? `panel-${t}` : undefined}
            class={tab === t ? 'current' : ''}
            onClick={() => setTab(t)}
          >
            {t === 'targeting' ? 'Targeting' : t === 'history' ? 'History' : 'Why this variant?'}
          </button>
        ))}
      </div>
      {tab === 'explain' ? (
        <div role="tabpanel" id="panel-explain" aria-labelledby="tab-explain">
          <ExplainPanel key={environment} flag={f.key} environment={environment} />
        </div>
      ) : tab === 'history' ? (
        <div role="tabpanel" id="panel-history" aria-labelledby="tab-history">
          <FlagHistory
            key={environment}
            flag={f.key}
            environment={environment}
            onReverted={() => {
              flag.reload();
              full.reload();
            }}
          />
        </div>
      ) : state ? (
        <TargetingEditor
          key={environment}
          flag={f}
          environment={environment}
          state={state}
          etag={full.data?.etag ?? null}
          segments={segments.data?.segments ?? []}
          flags={others}
          canaryVariant={canaryActive ? c!.canary : undefined}
          onSaved={() => {
            flag.reload();
            full.reload();
          }}
        />
      ) : (
        <p class="muted">{full.error ?? 'Loading…'}</p>
      )}
    </section>
  );
}

interface EditorProps {
  flag: Flag;
  environment: string;
  state: FlagStateResource;
  etag: string | null;
  segments: Segment[];
  /** The other live flags (what a prerequisite may name). */
  flags: Flag[];
  canaryVariant: string | undefined;
  onSaved: () => void;
}

/** The writable part of a state resource (what PUT takes). */
function editable(s: FlagStateResource): FlagState {
  return {
    enabled: s.enabled,
    offVariant: s.offVariant,
    ...(s.prerequisites?.length ? { prerequisites: s.prerequisites } : {}),
    targets: s.targets,
    rules: s.rules,
    fallthrough: s.fallthrough,
    version: s.version,
  };
}

function TargetingEditor({ flag, environment, state: resource, etag, segments, flags, canaryVariant, onSaved }: EditorProps) {
  const live = useLive();
  const can = useCan();
  const state = useMemo(() => editable(resource), [resource]);
  const [base, setBase] = useState<{ state: FlagState; etag: string | null }>(() => ({ state: clone(state), etag }));
  const [draft, setDraft] = useState<FlagState>(() => clone(state));
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  /** The id of the change request the last save became (the environment requires approval). */
  const [requested, setRequested] = useState<string | null>(null);
  const [samples, setSamples] = useState<SampleAttribute[]>([]);
  const variants = flag.variants.map((v) => v.key);
  const dirty = JSON.stringify(draft) !== JSON.stringify(base.state);
  // A change made elsewhere (another operator, the canary guard, a kill): adopt it unless we are mid-edit; then
  // say so, and let If-Match refuse the save rather than overwrite it. Versions only grow: a page data refresh that
  // still shows the version before our own save is older than the base, not a change elsewhere.
  const changedElsewhere = state.version > base.state.version;
  useEffect(() => {
    if (changedElsewhere && !dirty) {
      setBase({ state: clone(state), etag });
      setDraft(clone(state));
    }
  }, [state.version, etag]);

  // The validator's issues (the messages the server will give), shown in the preview and next to each condition.
  const checked = useMemo(() => {
    const { version: _v, ...candidate } = draft;
    return validateFlagState(candidate, flag as FlagDefinition, new Set(segments.map((x) => x.key)));
  }, [draft, flag, segments]);
  const issues = checked.ok ? [] : checked.issues;
  // Attribute suggestions: those the flag's rules and the segments' rules already use.
  const attributeNames = useMemo(() => attributesUsed([...draft.rules, ...segments.flatMap((x) => x.rules)]), [draft.rules, segments]);

  const preview = useMemo((): PreviewResult | { error: string } | { invalid: string[] } | null => {
    if (!dirty) return null;
    // An invalid state (rollout percents not totalling 100, an unknown operator…) evaluates to the caller's default
    // for everyone: say what is wrong, with the messages the server will give, instead of a preview of nonsense.
    if (!checked.ok) return { invalid: checked.issues.map((i) => `${i.path || '/'}: ${i.message}`) };
    try {
      return previewReassignment(flag as FlagDefinition, base.state as CoreFlagState, draft as CoreFlagState, segments as CoreSegment[], {
        sample: 10_000,
        distributions: samples.map((x) => ({ attribute: x.attribute.trim(), values: x.values })),
        ...(canaryVariant !== undefined ? { canaryVariant } : {}),
      });
    } catch (e) {
      return { error: errorText(e) };
    }
  }, [draft, base, segments, samples, canaryVariant, dirty, checked]);

  const update = (fn: (d: FlagState) => void) => {
    setSaved(false);
    setRequested(null);
    setDraft((d) => {
      const n = clone(d);
      fn(n);
      return n;
    });
  };

  const save = async (e: Event) => {
    e.preventDefault();
    setSaving(true);
    setError(null);
    try {
      // If-Match with the version we started from: a change made meanwhile elsewhere is a 412, not overwritten.
      const { version: _v, ...body } = draft;
      const answer = await api.put('/api/v1/flags/{key}/environments/{env}', {
        params: { path: { key: flag.key, env: environment }, header: base.etag ? { 'If-Match': base.etag } : {} },
        body,
      });
      // An environment that requires approval holds the change: nothing is written until another actor approves it.
      if (isChangeRequest(answer)) setRequested(answer.id);
      else {
        // Our own save is the new base: what the server stored, its version and entity tag (the next save's If-Match).
        const stored = editable(answer);
        setBase({ state: clone(stored), etag: `"v${stored.version}"` });
        setDraft(clone(stored));
        setSaved(true);
      }
      live.refresh();
      onSaved();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setSaving(false);
    }
  };

  return (
    <form class="editor" onSubmit={save} aria-labelledby="editor-title">
      <h2 id="editor-title">Targeting in {environment}</h2>
      <label>
        Off variant (served when killed){' '}
        <select value={draft.offVariant} onChange={(e) => update((d) => (d.offVariant = (e.currentTarget as HTMLSelectElement).value))}>
          {variants.map((v) => (
            <option key={v}>{v}</option>
          ))}
        </select>
      </label>

      <PrerequisitesEditor
        prerequisites={draft.prerequisites ?? []}
        flags={flags}
        onChange={(list) =>
          update((d) => {
            if (list.length) d.prerequisites = list;
            else delete d.prerequisites;
          })
        }
      />

      <fieldset>
        <legend>Individual targets</legend>
        {variants.map((v) => {
          const t = draft.targets.find((x) => x.variant === v);
          return (
            <label key={v} class="block">
              Context keys served <strong>{v}</strong> (comma or newline separated)
              <textarea
                rows={2}
                value={(t?.keys ?? []).join('\n')}
                onChange={(e) =>
                  update((d) => {
                    const keys = (e.currentTarget as HTMLTextAreaElement).value
                      .split(/[\n,]/)
                      .map((k) => k.trim())
                      .filter(Boolean);
                    d.targets = d.targets.filter((x) => x.variant !== v);
                    if (keys.length) d.targets.push({ variant: v, keys });
                  })
                }
              />
            </label>
          );
        })}
      </fieldset>

      <datalist id="attribute-names">
        {attributeNames.map((a) => (
          <option key={a} value={a} />
        ))}
      </datalist>
      <fieldset>
        <legend>Rules (first match serves)</legend>
        {draft.rules.length === 0 && <p class="muted">No rules.</p>}
        {draft.rules.map((r, i) => (
          <RuleEditor
            key={`${i}:${r.id}`}
            rule={r}
            index={i}
            count={draft.rules.length}
            variants={variants}
            segments={segments}
            attributeList="attribute-names"
            issues={issues
              .filter((x) => x.path.startsWith(`/rules/${i}/conditions`))
              .map((x) => ({ path: x.path.slice(`/rules/${i}/conditions`.length), message: x.message, full: x.path }))}
            onChange={(nr) => update((d) => (d.rules[i] = nr))}
            onMove={(delta) =>
              update((d) => {
                const [x] = d.rules.splice(i, 1);
                d.rules.splice(i + delta, 0, x!);
              })
            }
            onRemove={() => update((d) => d.rules.splice(i, 1))}
          />
        ))}
        <button
          type="button"
          onClick={() => update((d) => d.rules.push({ id: `rule-${d.rules.length + 1}`, conditions: [], serve: { variant: variants[0] ?? '' } }))}
        >
          Add rule
        </button>
      </fieldset>

      <ServeEditor
        id="fallthrough"
        label="Everyone else (fallthrough)"
        serve={draft.fallthrough}
        variants={variants}
        onChange={(s) => update((d) => (d.fallthrough = s))}
      />

      <section class="preview" aria-labelledby="preview-title" aria-live="polite">
        <h3 id="preview-title">Preview</h3>
        <SampleAttributesEditor attributes={samples} attributeList="attribute-names" onChange={setSamples} />
        {!dirty && <p class="muted">Change something to see how 10,000 sample contexts would be re-assigned.</p>}
        {(draft.prerequisites?.length ?? 0) > 0 && <p class="muted small">The preview assumes the prerequisites hold.</p>}
        {preview && 'error' in preview && <p class="error">{preview.error}</p>}
        {preview && 'invalid' in preview && (
          <div class="warn" data-testid="preview-invalid">
            <p>No preview: this state is not valid yet, and saving it will be refused.</p>
            <ul>
              {preview.invalid.map((m) => (
                <li key={m}>{m}</li>
              ))}
            </ul>
          </div>
        )}
        {preview && 'moved' in preview && (
          <div data-testid="preview">
            {preview.leavingCanary > 0 && (
              <p class="warn" role="alert" data-testid="canary-warning">
                This change moves {preview.leavingCanary} of {preview.sample} sample contexts out of the running canary (<code>{canaryVariant}</code>
                ), e.g. {preview.leavingExamples.join(', ')}. Their outcomes will stop counting for the canary, and they switch variant mid-rollout.
              </p>
            )}
            <p>
              {preview.moved} of {preview.sample} sample contexts ({((100 * preview.moved) / preview.sample).toFixed(1)}%) would change variant.
            </p>
            <table>
              <caption class="sr-only">Variants served to the sample contexts, now and after this change</caption>
              <thead>
                <tr>
                  <th scope="col">Variant</th>
                  <th scope="col">Now</th>
                  <th scope="col">After</th>
                </tr>
              </thead>
              <tbody>
                {[...new Set([...Object.keys(preview.before), ...Object.keys(preview.after)])].map((v) => (
                  <tr key={v}>
                    <th scope="row">{v}</th>
                    <td>{preview.before[v] ?? 0}</td>
                    <td>{preview.after[v] ?? 0}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {preview.transitions.length > 0 && (
              <ul>
                {preview.transitions.map((t) => (
                  <li key={t.from + t.to}>
                    {t.count} move from <code>{t.from}</code> to <code>{t.to}</code>
                  </li>
                ))}
              </ul>
            )}
          </div>
        )}
      </section>

      {changedElsewhere && dirty && (
        <p class="warn" role="alert">
          This state changed elsewhere (now version {state.version}) while you were editing. Saving will be refused; discard to load the latest.
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {!can('putFlagState', environment) ? (
        <p class="muted">Your role cannot change targeting in {environment}.</p>
      ) : (
        <div class="actions">
          <button
            type="button"
            disabled={!(dirty || changedElsewhere) || saving}
            onClick={() => {
              setBase({ state: clone(state), etag });
              setDraft(clone(state));
            }}
          >
            {changedElsewhere ? 'Discard and load the latest' : 'Discard changes'}
          </button>
          <button type="submit" disabled={!dirty || saving}>
            {saving ? 'Saving…' : preview && 'moved' in preview && preview.leavingCanary > 0 ? 'Save anyway' : 'Save targeting'}
          </button>
          {saved && <span role="status">Saved.</span>}
          {requested && (
            <span role="status" class="requested">
              {environment} requires approval: your change is now a pending{' '}
              <a href="/change-requests" onClick={onLinkClick}>
                change request
              </a>
              . Nothing changes until another person approves and applies it.
            </span>
          )}
        </div>
      )}
    </form>
  );
}

/**
 * The flags this one requires here (CONTRACT §12): each row a flag and the variants of it that satisfy the
 * requirement. The server refuses a missing flag, a foreign variant or a cycle, and the save shows its problem.
 */
function PrerequisitesEditor({
  prerequisites,
  flags,
  onChange,
}: {
  prerequisites: Prerequisite[];
  flags: Flag[];
  onChange: (list: Prerequisite[]) => void;
}) {
  const set = (i: number, p: Prerequisite) => onChange(prerequisites.map((x, j) => (j === i ? p : x)));
  const unused = flags.filter((f) => !prerequisites.some((p) => p.flag === f.key));
  return (
    <fieldset data-testid="prerequisites">
      <legend>Prerequisites (flags that must serve one of the chosen variants first; otherwise the off variant is served)</legend>
      {prerequisites.length === 0 && <p class="muted">None.</p>}
      {prerequisites.map((p, i) => {
        const target = flags.find((f) => f.key === p.flag);
        return (
          <div class="prerequisite" key={`${i}:${p.flag}`} data-testid={`prerequisite-${i}`}>
            <label>
              Flag{' '}
              <select
                aria-label={`Prerequisite ${i + 1} flag`}
                value={p.flag}
                onChange={(e) => {
                  const key = (e.currentTarget as HTMLSelectElement).value;
                  const next = flags.find((f) => f.key === key);
                  set(i, { flag: key, variants: next ? [next.variants[0]!.key] : [] });
                }}
              >
                {!target && <option value={p.flag}>{p.flag} (unknown)</option>}
                {flags
                  .filter((f) => f.key === p.flag || !prerequisites.some((q) => q.flag === f.key))
                  .map((f) => (
                    <option key={f.key} value={f.key}>
                      {f.key}
                    </option>
                  ))}
              </select>
            </label>{' '}
            <span class="muted small">serves</span>{' '}
            {(target?.variants ?? p.variants.map((key) => ({ key }))).map((v) => (
              <label key={v.key} class="inline">
                <input
                  type="checkbox"
                  aria-label={`Prerequisite ${i + 1} accepts ${v.key}`}
                  checked={p.variants.includes(v.key)}
                  onChange={(e) => {
                    const on = (e.currentTarget as HTMLInputElement).checked;
                    const variants = on ? [...p.variants, v.key] : p.variants.filter((x) => x !== v.key);
                    set(i, { ...p, variants });
                  }}
                />{' '}
                {v.key}
              </label>
            ))}{' '}
            <button type="button" onClick={() => onChange(prerequisites.filter((_, j) => j !== i))}>
              Remove
            </button>
          </div>
        );
      })}
      <button
        type="button"
        disabled={unused.length === 0}
        onClick={() => onChange([...prerequisites, { flag: unused[0]!.key, variants: [unused[0]!.variants[0]!.key] }])}
      >
        Add prerequisite
      </button>
    </fieldset>
  );
}

interface RuleEditorProps {
  rule: Rule;
  index: number;
  count: number;
  variants: string[];
  segments: Segment[];
  /** The id of the `<datalist>` of attribute suggestions. */
  attributeList: string;
  /** The validator's issues about this rule's conditions. */
  issues: ConditionIssue[];
  onChange: (r: Rule) => void;
  onMove: (delta: number) => void;
  onRemove: () => void;
}

function RuleEditor({ rule, index, count, variants, segments, attributeList, issues, onChange, onMove, onRemove }: RuleEditorProps) {
  return (
    <fieldset class="rule" aria-label={`Rule ${index + 1}: ${rule.id}`}>
      <div class="row">
        <label>
          Rule id <input value={rule.id} size={14} onInput={(e) => onChange({ ...rule, id: (e.currentTarget as HTMLInputElement).value })} />
        </label>
        <button type="button" disabled={index === 0} onClick={() => onMove(-1)} aria-label={`Move rule ${rule.id} up`}>
          ↑
        </button>
        <button type="button" disabled={index === count - 1} onClick={() => onMove(1)} aria-label={`Move rule ${rule.id} down`}>
          ↓
        </button>
        <button type="button" class="link" onClick={onRemove} aria-label={`Remove rule ${rule.id}`}>
          Remove
        </button>
      </div>
      <ConditionEditor
        label={`Rule ${index + 1}`}
        conditions={rule.conditions}
        segments={segments}
        attributeList={attributeList}
        issues={issues}
        onChange={(conditions) => onChange({ ...rule, conditions })}
      />
      <ServeEditor
        id={`rule-${index}`}
        label={`Rule ${rule.id} serves`}
        serve={rule.serve}
        variants={variants}
        onChange={(s) => onChange({ ...rule, serve: s })}
      />
    </fieldset>
  );
}
