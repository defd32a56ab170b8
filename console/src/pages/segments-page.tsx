/**
 * Segments (cohorts shared by all environments): list, create, edit (rules with the condition editor of
 * components/condition-editor.tsx), delete (a segment in use cannot be deleted).
 */
import { useCan } from '../lib/me.js';
import { useMemo, useState } from 'preact/hooks';
import { validateSegment } from '@aviary/sdk/core';
import { attributesUsed, ConditionEditor } from '../components/condition-editor.js';
import { api, errorText } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import type { Segment, SegmentInput } from '../lib/types.js';

type SegmentRule = NonNullable<SegmentInput['rules']>[number];
import { useResource } from '../lib/use-resource.js';

const lines = (s: string) =>
  s
    .split(/[\n,]/)
    .map((x) => x.trim())
    .filter(Boolean);

export function SegmentsPage() {
  const can = useCan();
  const live = useLive();
  const list = useResource(() => api.get('/api/v1/segments'), [live.tick]);
  const [editing, setEditing] = useState<Segment | 'new' | null>(null);
  const [error, setError] = useState<string | null>(null);

  const remove = async (key: string) => {
    if (!confirm(`Delete segment ${key}?`)) return;
    setError(null);
    try {
      await api.del('/api/v1/segments/{key}', { params: { path: { key } } });
      live.refresh();
      list.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <section aria-labelledby="segments-title">
      <div class="page-head">
        <h1 id="segments-title">Segments</h1>
        {can('putSegment') && (
          <button type="button" onClick={() => setEditing('new')}>
            New segment
          </button>
        )}
      </div>
      {(error ?? list.error) && (
        <p class="error" role="alert">
          {error ?? list.error}
        </p>
      )}
      {editing && (
        <SegmentForm
          segment={editing === 'new' ? null : editing}
          onDone={() => {
            setEditing(null);
            live.refresh();
            list.reload();
          }}
          onCancel={() => setEditing(null)}
        />
      )}
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Segments (cohorts), shared by all environments</caption>
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Description</th>
              <th scope="col">Included</th>
              <th scope="col">Excluded</th>
              <th scope="col">Rules</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(list.data?.segments ?? []).map((s) => (
              <tr key={s.key}>
                <th scope="row">{s.key}</th>
                <td>{s.description ?? ''}</td>
                <td>{s.included.length}</td>
                <td>{s.excluded.length}</td>
                <td>{s.rules.length}</td>
                <td class="row">
                  {can('putSegment') && (
                    <button type="button" onClick={() => setEditing(s)} aria-label={`Edit segment ${s.key}`}>
                      Edit
                    </button>
                  )}
                  {can('deleteSegment') && (
                    <button type="button" class="link" onClick={() => remove(s.key)} aria-label={`Delete segment ${s.key}`}>
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {list.data && list.data.segments.length === 0 && <p class="muted">No segments yet.</p>}
    </section>
  );
}

function SegmentForm({ segment, onDone, onCancel }: { segment: Segment | null; onDone: () => void; onCancel: () => void }) {
  const [key, setKey] = useState(segment?.key ?? '');
  const [description, setDescription] = useState(segment?.description ?? '');
  const [included, setIncluded] = useState((segment?.included ?? []).join('\n'));
  const [excluded, setExcluded] = useState((segment?.excluded ?? []).join('\n'));
  const [rules, setRules] = useState<SegmentRule[]>(segment?.rules ?? []);
  const [error, setError] = useState<string | null>(null);
  // The rules' conditions are edited like a flag rule's (no segment conditions: membership stays one level deep), with
  // the validator's messages (the API's) next to each condition.
  const issues = useMemo(() => {
    const checked = validateSegment({ key: key.trim() || 'x', description, included: [], excluded: [], rules });
    return checked.ok ? [] : checked.issues;
  }, [key, description, rules]);
  const attributes = useMemo(() => attributesUsed(rules), [rules]);
  const setRule = (i: number, r: SegmentRule) => setRules(rules.map((x, j) => (j === i ? r : x)));
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const k = key.trim();
      await api.put('/api/v1/segments/{key}', {
        params: { path: { key: k } },
        body: { key: k, description, included: lines(included), excluded: lines(excluded), rules },
      });
      onDone();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form class="editor" onSubmit={submit} aria-labelledby="segment-form-title">
      <h2 id="segment-form-title">{segment ? `Edit ${segment.key}` : 'New segment'}</h2>
      <label class="block">
        Key <input value={key} disabled={segment !== null} required onInput={(e) => setKey((e.currentTarget as HTMLInputElement).value)} />
      </label>
      <label class="block">
        Description <input value={description} onInput={(e) => setDescription((e.currentTarget as HTMLInputElement).value)} />
      </label>
      <div class="grid2">
        <label class="block">
          Included keys (always in)
          <textarea rows={3} value={included} onInput={(e) => setIncluded((e.currentTarget as HTMLTextAreaElement).value)} />
        </label>
        <label class="block">
          Excluded keys (never in through rules)
          <textarea rows={3} value={excluded} onInput={(e) => setExcluded((e.currentTarget as HTMLTextAreaElement).value)} />
        </label>
      </div>
      <fieldset>
        <legend>Rules (a context not excluded is in when any rule matches)</legend>
        <datalist id="segment-attribute-names">
          {attributes.map((a) => (
            <option key={a} value={a} />
          ))}
        </datalist>
        {rules.length === 0 && <p class="muted">No rules: only the included keys are in.</p>}
        {rules.map((r, i) => (
          <fieldset class="rule" key={i} aria-label={`Segment rule ${i + 1}`}>
            <ConditionEditor
              label={`Segment rule ${i + 1}`}
              conditions={r.conditions}
              segments={[]}
              allowSegments={false}
              attributeList="segment-attribute-names"
              issues={issues
                .filter((x) => x.path.startsWith(`/rules/${i}/conditions`))
                .map((x) => ({ path: x.path.slice(`/rules/${i}/conditions`.length), message: x.message, full: x.path }))}
              onChange={(conditions) => setRule(i, { ...r, conditions: conditions as SegmentRule['conditions'] })}
            />
            <button type="button" class="link" onClick={() => setRules(rules.filter((_, j) => j !== i))} aria-label={`Remove segment rule ${i + 1}`}>
              Remove rule
            </button>
          </fieldset>
        ))}
        <button type="button" onClick={() => setRules([...rules, { conditions: [{ attribute: '', op: 'in', values: [] }] }])}>
          Add segment rule
        </button>
      </fieldset>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit">Save segment</button>
      </div>
    </form>
  );
}
