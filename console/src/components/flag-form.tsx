/**
 * Flag definitions in the console (issue 18): the "New flag" form and the definition editor of a flag's page. Variants
 * are edited with typed values (a boolean picks true or false, a string or number has an input of that type, a json
 * variant is a JSON text checked as you type), never as one JSON document. Validation is the API's: a refused write
 * shows the problem document's errors next to the field each one names (`errors[].path`), and the others above the
 * buttons. Loaded with `import()` when first needed (components/flag-definition-editor.tsx, new-flag.tsx), so the
 * incident path's bundle does not carry it.
 */
import { useState } from 'preact/hooks';
import { api, ApiError, errorText } from '../lib/api.js';
import type { Flag } from '../lib/types.js';

type Kind = Flag['kind'];
type Variant = Flag['variants'][number];
const KINDS: Kind[] = ['boolean', 'string', 'number', 'json'];

/** One variant being edited: the value as typed (for a boolean "true" or "false"). */
interface DraftVariant {
  key: string;
  text: string;
  description: string;
}

/** What a refused write said: messages by field (`key`, `tags`, `variants/1/value`…) and those naming no field shown. */
interface Refusal {
  summary: string;
  fields: Record<string, string[]>;
  other: string[];
  /** 412: the flag changed since it was read. */
  stale?: string;
}

/** The form field a problem's `errors[].path` names, or null (then the message is listed above the buttons). */
function fieldOf(path: string, variants: number): string | null {
  if (path === '/key' || path === '/kind' || path === '/description' || path === '/variants') return path.slice(1);
  if (/^\/tags(\/|$)/.test(path)) return 'tags';
  const m = /^\/variants\/(\d+)(?:\/(key|value|description))?(?:\/|$)/.exec(path);
  if (m && Number(m[1]) < variants) return m[2] ? `variants/${m[1]}/${m[2]}` : `variants/${m[1]}`;
  return null;
}

function refusal(e: unknown, variants: number): Refusal {
  if (!(e instanceof ApiError)) return { summary: errorText(e), fields: {}, other: [] };
  const p = e.problem;
  const fields: Record<string, string[]> = {};
  const other: string[] = [];
  for (const issue of p.errors ?? []) {
    const field = fieldOf(issue.path, variants);
    if (field) (fields[field] ??= []).push(issue.message);
    else other.push(`${issue.path || '/'}: ${issue.message}`);
  }
  const detail = typeof p.detail === 'string' ? p.detail : '';
  // A validation problem's detail repeats its first error: say the title, and each error once, where it belongs.
  const repeats = (p.errors ?? []).some((i) => detail === `${i.path}: ${i.message}` || detail.endsWith(i.message));
  const summary = repeats || !detail ? p.title : detail;
  if (e.status === 412) {
    const now = (p as { currentETag?: unknown }).currentETag;
    return {
      summary,
      fields,
      other,
      stale: `Not saved: this flag was changed elsewhere since you opened it${typeof now === 'string' ? ` (it is now ${now.replace(/"/g, '')})` : ''}. Load the latest definition and make your change again.`,
    };
  }
  return { summary, fields, other };
}

function draftOf(kind: Kind, v: Variant): DraftVariant {
  const text = kind === 'string' && typeof v.value === 'string' ? v.value : kind === 'json' ? JSON.stringify(v.value, null, 1) : String(v.value);
  return { key: v.key, text, description: v.description ?? '' };
}

function presetVariants(kind: Kind): DraftVariant[] {
  if (kind === 'boolean')
    return [
      { key: 'on', text: 'true', description: '' },
      { key: 'off', text: 'false', description: '' },
    ];
  const text = kind === 'number' ? '0' : kind === 'json' ? '{}' : '';
  return [{ key: '', text, description: '' }];
}

/** A JSON text's problem, or null when it parses. */
function jsonProblem(text: string): string | null {
  try {
    JSON.parse(text);
    return null;
  } catch (e) {
    return `not valid JSON: ${errorText(e)}`;
  }
}

/**
 * The value to send for a typed input. A number field the browser cannot read as a number is sent as the text, so the
 * API says what is wrong with it in its own words.
 */
function typedValue(kind: Kind, text: string): unknown {
  if (kind === 'boolean') return text === 'true';
  if (kind === 'number') return text.trim() !== '' && Number.isFinite(Number(text)) ? Number(text) : text;
  if (kind === 'json') return JSON.parse(text) as unknown;
  return text;
}

function variantsBody(kind: Kind, drafts: DraftVariant[]): Variant[] {
  return drafts.map((d) => ({
    key: d.key.trim(),
    value: typedValue(kind, d.text) as Variant['value'],
    ...(d.description.trim() ? { description: d.description.trim() } : {}),
  }));
}

const tagsOf = (text: string) =>
  text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);

/** The messages of one field, announced with the field (its `aria-describedby`). */
function FieldError({ id, messages }: { id: string; messages: string[] | undefined }) {
  if (!messages?.length) return null;
  return (
    <span class="error field-error" id={id}>
      {messages.join('; ')}
    </span>
  );
}

/** Props that tie an input to its error messages. */
function described(id: string, messages: string[] | undefined) {
  return messages?.length ? { 'aria-invalid': true as const, 'aria-describedby': id } : {};
}

function VariantsEditor({
  idPrefix,
  kind,
  variants,
  errors,
  onChange,
}: {
  idPrefix: string;
  kind: Kind;
  variants: DraftVariant[];
  errors: Record<string, string[]>;
  onChange: (v: DraftVariant[]) => void;
}) {
  const set = (i: number, patch: Partial<DraftVariant>) => onChange(variants.map((v, j) => (j === i ? { ...v, ...patch } : v)));
  return (
    <fieldset class="variants-editor" aria-describedby={errors['variants'] ? `${idPrefix}-variants-error` : undefined}>
      <legend>Variants</legend>
      <FieldError id={`${idPrefix}-variants-error`} messages={errors['variants']} />
      {variants.map((v, i) => {
        const n = i + 1;
        const err = (f: string) => errors[`variants/${i}/${f}`];
        const eid = (f: string) => `${idPrefix}-variant-${i}-${f}-error`;
        const bad = kind === 'json' ? jsonProblem(v.text) : null;
        const valueErrors = [...(bad ? [bad] : []), ...(err('value') ?? [])];
        return (
          <div class="variant-row" key={i} data-testid={`variant-${i}`}>
            <label>
              Key
              <input
                aria-label={`Variant ${n} key`}
                value={v.key}
                size={12}
                onInput={(e) => set(i, { key: (e.currentTarget as HTMLInputElement).value })}
                {...described(eid('key'), err('key'))}
              />
              <FieldError id={eid('key')} messages={err('key')} />
            </label>
            <div class="field">
              <span aria-hidden="true">Value</span>
              {kind === 'boolean' ? (
                <select
                  aria-label={`Variant ${n} value`}
                  value={v.text}
                  onChange={(e) => set(i, { text: (e.currentTarget as HTMLSelectElement).value })}
                  {...described(eid('value'), valueErrors)}
                >
                  <option value="true">true</option>
                  <option value="false">false</option>
                </select>
              ) : kind === 'json' ? (
                <textarea
                  aria-label={`Variant ${n} value`}
                  rows={2}
                  value={v.text}
                  onInput={(e) => set(i, { text: (e.currentTarget as HTMLTextAreaElement).value })}
                  {...described(eid('value'), valueErrors)}
                />
              ) : kind === 'number' ? (
                <input
                  aria-label={`Variant ${n} value`}
                  type="number"
                  step="any"
                  value={v.text}
                  onInput={(e) => set(i, { text: (e.currentTarget as HTMLInputElement).value })}
                  {...described(eid('value'), valueErrors)}
                />
              ) : (
                <input
                  aria-label={`Variant ${n} value`}
                  value={v.text}
                  onInput={(e) => set(i, { text: (e.currentTarget as HTMLInputElement).value })}
                  {...described(eid('value'), valueErrors)}
                />
              )}
              <FieldError id={eid('value')} messages={valueErrors} />
            </div>
            <label>
              Description
              <input
                aria-label={`Variant ${n} description`}
                value={v.description}
                onInput={(e) => set(i, { description: (e.currentTarget as HTMLInputElement).value })}
                {...described(eid('description'), err('description'))}
              />
              <FieldError id={eid('description')} messages={err('description')} />
            </label>
            <button type="button" class="link" onClick={() => onChange(variants.filter((_, j) => j !== i))} aria-label={`Remove variant ${n}`}>
              Remove
            </button>
            <FieldError id={`${idPrefix}-variant-${i}-error`} messages={errors[`variants/${i}`]} />
          </div>
        );
      })}
      <button
        type="button"
        onClick={() => onChange([...variants, { key: '', text: presetVariants(kind)[kind === 'boolean' ? 1 : 0]!.text, description: '' }])}
      >
        Add variant
      </button>
    </fieldset>
  );
}

/** Description and tags, shared by both forms. */
function DescriptionAndTags({
  idPrefix,
  description,
  tags,
  errors,
  onDescription,
  onTags,
}: {
  idPrefix: string;
  description: string;
  tags: string;
  errors: Record<string, string[]>;
  onDescription: (s: string) => void;
  onTags: (s: string) => void;
}) {
  return (
    <>
      <label class="block" for={`${idPrefix}-description`}>
        Description
      </label>
      <textarea
        id={`${idPrefix}-description`}
        rows={2}
        value={description}
        onInput={(e) => onDescription((e.currentTarget as HTMLTextAreaElement).value)}
        {...described(`${idPrefix}-description-error`, errors['description'])}
      />
      <FieldError id={`${idPrefix}-description-error`} messages={errors['description']} />
      <label class="block" for={`${idPrefix}-tags`}>
        Tags (comma-separated)
      </label>
      <input
        id={`${idPrefix}-tags`}
        value={tags}
        placeholder="checkout, team-payments"
        onInput={(e) => onTags((e.currentTarget as HTMLInputElement).value)}
        {...described(`${idPrefix}-tags-error`, errors['tags'])}
      />
      <FieldError id={`${idPrefix}-tags-error`} messages={errors['tags']} />
      {tagsOf(tags).length > 0 && (
        <p class="chips">
          {tagsOf(tags).map((t) => (
            <span class="tag" key={t}>
              {t}
            </span>
          ))}
        </p>
      )}
    </>
  );
}

function RefusalText({ refused }: { refused: Refusal | null }) {
  if (!refused) return null;
  return (
    <div class="error" role="alert">
      <p>{refused.stale ?? refused.summary}</p>
      {refused.other.length > 0 && (
        <ul>
          {refused.other.map((m) => (
            <li key={m}>{m}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** "New flag": creates it (`POST /api/v1/flags`) and hands the created flag to `onCreated`. */
export function CreateFlagForm({ onCreated, onCancel }: { onCreated: (f: Flag) => void; onCancel: () => void }) {
  const [key, setKey] = useState('');
  const [kind, setKind] = useState<Kind>('boolean');
  const [variants, setVariants] = useState<DraftVariant[]>(() => presetVariants('boolean'));
  const [description, setDescription] = useState('');
  const [tags, setTags] = useState('');
  const [busy, setBusy] = useState(false);
  const [refused, setRefused] = useState<Refusal | null>(null);
  const errors = refused?.fields ?? {};
  const jsonBad = kind === 'json' && variants.some((v) => jsonProblem(v.text) !== null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (jsonBad) return;
    setBusy(true);
    setRefused(null);
    try {
      const created = await api.post('/api/v1/flags', {
        body: {
          key: key.trim(),
          kind,
          variants: variantsBody(kind, variants),
          ...(description.trim() ? { description: description.trim() } : {}),
          ...(tagsOf(tags).length ? { tags: tagsOf(tags) } : {}),
        },
      });
      onCreated(created);
    } catch (err) {
      setRefused(refusal(err, variants.length));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="flag-form" onSubmit={submit} noValidate>
      <label class="block" for="new-flag-key">
        Key
      </label>
      <input
        id="new-flag-key"
        value={key}
        placeholder="new-checkout"
        autofocus
        autocomplete="off"
        onInput={(e) => setKey((e.currentTarget as HTMLInputElement).value)}
        {...described('new-flag-key-error', errors['key'])}
      />
      <FieldError id="new-flag-key-error" messages={errors['key']} />
      <label class="block" for="new-flag-kind">
        Kind
      </label>
      <select
        id="new-flag-kind"
        value={kind}
        onChange={(e) => {
          const k = (e.currentTarget as HTMLSelectElement).value as Kind;
          setKind(k);
          setVariants(presetVariants(k));
        }}
        {...described('new-flag-kind-error', errors['kind'])}
      >
        {KINDS.map((k) => (
          <option key={k} value={k}>
            {k}
          </option>
        ))}
      </select>
      <FieldError id="new-flag-kind-error" messages={errors['kind']} />
      <VariantsEditor idPrefix="new-flag" kind={kind} variants={variants} errors={errors} onChange={setVariants} />
      <DescriptionAndTags idPrefix="new-flag" description={description} tags={tags} errors={errors} onDescription={setDescription} onTags={setTags} />
      <RefusalText refused={refused} />
      <div class="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" disabled={busy || jsonBad}>
          {busy ? 'Creating…' : 'Create flag'}
        </button>
      </div>
    </form>
  );
}

/**
 * A flag's definition (description, tags, variants), written with `PATCH` and `If-Match: "r<revision>"` of the
 * definition the editor started from: a change made meanwhile elsewhere is refused (412) and said so, not overwritten.
 * `latest` is the flag as the page now has it (pushed updates), to warn before saving and to start again from.
 */
export function DefinitionForm({ latest, onSaved, onCancel }: { latest: Flag; onSaved: (f: Flag) => void; onCancel: () => void }) {
  const [base, setBase] = useState(latest);
  const [variants, setVariants] = useState<DraftVariant[]>(() => base.variants.map((v) => draftOf(base.kind, v)));
  const [description, setDescription] = useState(base.description);
  const [tags, setTags] = useState(base.tags.join(', '));
  const [busy, setBusy] = useState(false);
  const [refused, setRefused] = useState<Refusal | null>(null);
  const errors = refused?.fields ?? {};
  const kind = base.kind;
  const jsonBad = kind === 'json' && variants.some((v) => jsonProblem(v.text) !== null);
  const changedElsewhere = latest.revision > base.revision;

  // Starts again from the definition as it is now (read again: a refusal can arrive before the pushed update does).
  const restart = async () => {
    let now = latest;
    try {
      now = await api.get('/api/v1/flags/{key}', { params: { path: { key: base.key } } });
    } catch (err) {
      return setRefused(refusal(err, variants.length));
    }
    setBase(now);
    setVariants(now.variants.map((v) => draftOf(now.kind, v)));
    setDescription(now.description);
    setTags(now.tags.join(', '));
    setRefused(null);
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    if (jsonBad) return;
    setBusy(true);
    setRefused(null);
    try {
      const saved = await api.patch('/api/v1/flags/{key}', {
        params: { path: { key: base.key }, header: { 'If-Match': `"r${base.revision}"` } },
        body: { description: description.trim(), tags: tagsOf(tags), variants: variantsBody(kind, variants) },
      });
      onSaved(saved);
    } catch (err) {
      setRefused(refusal(err, variants.length));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="flag-form editor" onSubmit={submit} noValidate aria-labelledby="definition-title">
      <h2 id="definition-title">Definition of {base.key}</h2>
      <p class="muted small">
        Key <code>{base.key}</code> and kind <code>{kind}</code> cannot change. A variant a state serves cannot be removed or renamed until no
        environment uses it.
      </p>
      <VariantsEditor idPrefix="edit-flag" kind={kind} variants={variants} errors={errors} onChange={setVariants} />
      <DescriptionAndTags
        idPrefix="edit-flag"
        description={description}
        tags={tags}
        errors={errors}
        onDescription={setDescription}
        onTags={setTags}
      />
      {changedElsewhere && !refused?.stale && (
        <p class="warn" role="alert">
          This flag changed elsewhere (now revision {latest.revision}) while you were editing. Saving will be refused; load the latest to start again.
        </p>
      )}
      <RefusalText refused={refused} />
      <div class="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        {(changedElsewhere || refused?.stale) && (
          <button type="button" onClick={() => void restart()}>
            Load the latest
          </button>
        )}
        <button type="submit" disabled={busy || jsonBad}>
          {busy ? 'Saving…' : 'Save definition'}
        </button>
      </div>
    </form>
  );
}
