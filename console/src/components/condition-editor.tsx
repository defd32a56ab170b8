/**
 * The condition editor of a rule (CONTRACT §1) without JSON: per condition an attribute (with suggestions), an operator
 * in words, values as chips typed for the operator, `negate` as "not", or a segment picked from the list; conditions
 * are added, removed and reordered. The validator's messages (the API's) are shown next to the condition they name.
 * SampleAttributesEditor describes the preview's sample contexts the same way: an attribute, its values as chips with
 * shares ("pro 30%, free 70%").
 */
import { useState } from 'preact/hooks';
import {
  type AttributeCondition,
  attributesUsed,
  chipText,
  OPERATOR_LABELS,
  type Operator,
  parseShares,
  parseValue,
  type Scalar,
  type Share,
  typeOf,
  VALUE_TYPE_LABELS,
  type ValueType,
  valueTypes,
  withOperator,
} from '../lib/conditions.js';
import type { Condition, Segment } from '../lib/types.js';

export { attributesUsed };

/** A validation issue, its path relative to the edited conditions (`/1/values/0`). */
export interface ConditionIssue {
  path: string;
  message: string;
  /** The path as the API gives it (shown). */
  full: string;
}

export interface ConditionEditorProps {
  /** Names the controls' group, e.g. `Rule 1`. */
  label: string;
  conditions: Condition[];
  segments: Segment[];
  /** The id of a `<datalist>` of attribute suggestions. */
  attributeList: string;
  issues: ConditionIssue[];
  /** Segment rules may not reference segments: no "Add segment condition" then. */
  allowSegments?: boolean;
  onChange: (conditions: Condition[]) => void;
}

export function ConditionEditor({ label, conditions, segments, attributeList, issues, allowSegments = true, onChange }: ConditionEditorProps) {
  const set = (i: number, c: Condition) => onChange(conditions.map((x, j) => (j === i ? c : x)));
  const move = (i: number, delta: number) => {
    const next = [...conditions];
    const [x] = next.splice(i, 1);
    next.splice(i + delta, 0, x!);
    onChange(next);
  };
  const own = (i: number) => issues.filter((x) => x.path === `/${i}` || x.path.startsWith(`/${i}/`));
  const general = issues.filter((x) => !/^\/\d+(\/|$)/.test(x.path));
  return (
    <fieldset class="conditions" aria-label={`${label} conditions`}>
      <legend class="muted small">Conditions (all must hold; none: everyone matches)</legend>
      {conditions.map((c, i) => {
        const n = i + 1;
        const mine = own(i);
        return (
          <div class="condition" key={i} data-testid={`condition-${i}`}>
            <div class="row">
              <span class="muted small">{i === 0 ? 'if' : 'and'}</span>
              {'segment' in c ? (
                <SegmentRow n={n} c={c} segments={segments} onChange={(x) => set(i, x)} />
              ) : (
                <AttributeRow n={n} c={c} attributeList={attributeList} invalid={mine.length > 0} onChange={(x) => set(i, x)} />
              )}
              <span class="condition-actions">
                <button type="button" disabled={i === 0} onClick={() => move(i, -1)} aria-label={`Move condition ${n} up`}>
                  ↑
                </button>
                <button type="button" disabled={i === conditions.length - 1} onClick={() => move(i, 1)} aria-label={`Move condition ${n} down`}>
                  ↓
                </button>
                <button
                  type="button"
                  class="link"
                  onClick={() => onChange(conditions.filter((_, j) => j !== i))}
                  aria-label={`Remove condition ${n}`}
                >
                  Remove
                </button>
              </span>
            </div>
            {mine.length > 0 && (
              <ul class="error small" aria-label={`Problems with condition ${n}`}>
                {mine.map((x) => (
                  <li key={x.full + x.message}>
                    {x.full}: {x.message}
                  </li>
                ))}
              </ul>
            )}
          </div>
        );
      })}
      {general.length > 0 && (
        <ul class="error small">
          {general.map((x) => (
            <li key={x.full + x.message}>
              {x.full}: {x.message}
            </li>
          ))}
        </ul>
      )}
      <div class="row">
        <button type="button" onClick={() => onChange([...conditions, { attribute: '', op: 'in', values: [] }])}>
          Add condition
        </button>
        {allowSegments && (
          <button type="button" disabled={segments.length === 0} onClick={() => onChange([...conditions, { segment: segments[0]!.key }])}>
            Add segment condition
          </button>
        )}
      </div>
    </fieldset>
  );
}

function NotBox({ n, negate, onChange }: { n: number; negate: boolean; onChange: (negate: boolean) => void }) {
  return (
    <label class="inline">
      <input
        type="checkbox"
        aria-label={`Condition ${n} not`}
        checked={negate}
        onChange={(e) => onChange((e.currentTarget as HTMLInputElement).checked)}
      />{' '}
      not
    </label>
  );
}

/** `negate` is written only when true (the API's canonical form leaves it out). */
function withNegate<T extends Condition>(c: T, negate: boolean): T {
  const { negate: _n, ...rest } = c;
  return (negate ? { ...rest, negate: true } : rest) as T;
}

function SegmentRow({
  n,
  c,
  segments,
  onChange,
}: {
  n: number;
  c: Extract<Condition, { segment: string }>;
  segments: Segment[];
  onChange: (c: Condition) => void;
}) {
  return (
    <>
      <NotBox n={n} negate={c.negate === true} onChange={(v) => onChange(withNegate(c, v))} />
      <label>
        in segment{' '}
        <select
          aria-label={`Condition ${n} segment`}
          value={c.segment}
          onChange={(e) => onChange({ ...c, segment: (e.currentTarget as HTMLSelectElement).value })}
        >
          {!segments.some((s) => s.key === c.segment) && <option value={c.segment}>{c.segment} (unknown)</option>}
          {segments.map((s) => (
            <option key={s.key} value={s.key}>
              {s.key}
              {s.description ? ` — ${s.description}` : ''}
            </option>
          ))}
        </select>
      </label>
    </>
  );
}

function AttributeRow({
  n,
  c,
  attributeList,
  invalid,
  onChange,
}: {
  n: number;
  c: AttributeCondition;
  attributeList: string;
  invalid: boolean;
  onChange: (c: Condition) => void;
}) {
  const types = valueTypes(c.op);
  const [chosen, setChosen] = useState<ValueType | null>(null);
  const values = c.values ?? [];
  // The chosen type, else that of the last value (a stored rule of numbers opens on "number"), else the operator's first.
  const last = values.length > 0 ? typeOf(values[values.length - 1]!, c.op) : undefined;
  const type = chosen !== null && types.includes(chosen) ? chosen : last !== undefined && types.includes(last) ? last : types[0];
  return (
    <>
      <input
        aria-label={`Condition ${n} attribute`}
        placeholder="attribute"
        list={attributeList}
        size={12}
        value={c.attribute}
        onInput={(e) => onChange({ ...c, attribute: (e.currentTarget as HTMLInputElement).value })}
      />
      <NotBox n={n} negate={c.negate === true} onChange={(v) => onChange(withNegate(c, v))} />
      <select
        aria-label={`Condition ${n} operator`}
        value={c.op}
        onChange={(e) => onChange(withOperator(c, (e.currentTarget as HTMLSelectElement).value as Operator))}
      >
        {OPERATOR_LABELS.map(([op, words]) => (
          <option key={op} value={op}>
            {words}
          </option>
        ))}
      </select>
      {types.length > 1 && (
        <select
          aria-label={`Condition ${n} value type`}
          value={type}
          onChange={(e) => setChosen((e.currentTarget as HTMLSelectElement).value as ValueType)}
        >
          {types.map((t) => (
            <option key={t} value={t}>
              {VALUE_TYPE_LABELS[t]}
            </option>
          ))}
        </select>
      )}
      {type === undefined ? (
        <span class="muted small">(no values)</span>
      ) : (
        <Chips n={n} op={c.op} type={type} values={values} invalid={invalid} onChange={(vs) => onChange({ ...c, values: vs })} />
      )}
    </>
  );
}

const PLACEHOLDER: Record<ValueType, string> = {
  string: 'value, Enter',
  number: 'number, Enter',
  boolean: 'true or false',
  date: '2026-01-31 or …T12:00Z',
  epoch: 'epoch milliseconds',
  version: '4.2.0',
};

function Chips({
  n,
  op,
  type,
  values,
  invalid,
  onChange,
}: {
  n: number;
  op: Operator;
  type: ValueType;
  values: Scalar[];
  invalid: boolean;
  onChange: (v: Scalar[]) => void;
}) {
  const [text, setText] = useState('');
  const [bad, setBad] = useState<string | null>(null);
  // A pattern may contain commas (`a{1,3}`): under `matches`, only Enter adds.
  const separators = op === 'matches' ? ['Enter'] : ['Enter', ','];
  const add = () => {
    if (text.trim() === '') return;
    const parsed = parseValue(text, type);
    if ('error' in parsed) return setBad(parsed.error);
    setBad(null);
    setText('');
    onChange([...values, parsed.value]);
  };
  return (
    <span class="chips">
      {values.map((v, j) => (
        <span class="chip" key={`${j}:${String(v)}`}>
          {chipText(v, op)}
          <button
            type="button"
            class="link"
            aria-label={`Remove value ${String(v)} from condition ${n}`}
            onClick={() => onChange(values.filter((_, k) => k !== j))}
          >
            ×
          </button>
        </span>
      ))}
      <input
        aria-label={`Add a value to condition ${n}`}
        aria-invalid={bad !== null || invalid}
        placeholder={PLACEHOLDER[type]}
        size={14}
        value={text}
        onInput={(e) => setText((e.currentTarget as HTMLInputElement).value)}
        onKeyDown={(e) => {
          if (separators.includes(e.key)) {
            e.preventDefault();
            add();
          }
        }}
        onBlur={add}
      />
      {bad && <span class="error small">{bad}</span>}
      <span class="sr-only">
        {values.length === 0 ? 'no values' : `${values.length} values, typed ${values.map((v) => typeOf(v, op)).join(', ')}`}
      </span>
    </span>
  );
}

/** One attribute of the preview's sample contexts with its values' shares. */
export interface SampleAttribute {
  attribute: string;
  type: 'string' | 'number' | 'boolean';
  values: Share[];
}

/** The preview's sample contexts, described by attribute: values as chips with their shares ("pro 30%, free 70%"). */
export function SampleAttributesEditor({
  attributes,
  attributeList,
  onChange,
}: {
  attributes: SampleAttribute[];
  attributeList: string;
  onChange: (a: SampleAttribute[]) => void;
}) {
  const set = (i: number, a: SampleAttribute) => onChange(attributes.map((x, j) => (j === i ? a : x)));
  return (
    <fieldset class="samples">
      <legend>Attributes of the sample contexts (each context gets a value by its share), so rules on them can match</legend>
      {attributes.length === 0 && <p class="muted small">None: the sample contexts have only a key.</p>}
      {attributes.map((a, i) => (
        <SampleRow
          key={i}
          n={i + 1}
          a={a}
          attributeList={attributeList}
          onChange={(x) => set(i, x)}
          onRemove={() => onChange(attributes.filter((_, j) => j !== i))}
        />
      ))}
      <button type="button" onClick={() => onChange([...attributes, { attribute: '', type: 'string', values: [] }])}>
        Add sample attribute
      </button>
    </fieldset>
  );
}

function SampleRow({
  n,
  a,
  attributeList,
  onChange,
  onRemove,
}: {
  n: number;
  a: SampleAttribute;
  attributeList: string;
  onChange: (a: SampleAttribute) => void;
  onRemove: () => void;
}) {
  const [text, setText] = useState('');
  const [bad, setBad] = useState<string | null>(null);
  const total = Math.round(a.values.reduce((s, v) => s + v.percent, 0) * 1000) / 1000;
  const add = () => {
    if (text.trim() === '') return;
    const parsed = parseShares(text, a.type, total);
    if ('error' in parsed) return setBad(parsed.error);
    setBad(null);
    setText('');
    onChange({ ...a, values: [...a.values, ...parsed.shares] });
  };
  return (
    <div class="row sample" data-testid={`sample-${n - 1}`}>
      <input
        aria-label={`Sample attribute ${n} name`}
        placeholder="attribute"
        list={attributeList}
        size={12}
        value={a.attribute}
        onInput={(e) => onChange({ ...a, attribute: (e.currentTarget as HTMLInputElement).value })}
      />
      <select
        aria-label={`Sample attribute ${n} type`}
        value={a.type}
        onChange={(e) => onChange({ ...a, type: (e.currentTarget as HTMLSelectElement).value as SampleAttribute['type'], values: [] })}
      >
        <option value="string">text</option>
        <option value="number">number</option>
        <option value="boolean">true/false</option>
      </select>
      <span class="chips">
        {a.values.map((v, j) => (
          <span class="chip" key={`${j}:${String(v.value)}`}>
            {String(v.value)} {v.percent}%
            <button
              type="button"
              class="link"
              aria-label={`Remove ${String(v.value)} from sample attribute ${n}`}
              onClick={() => onChange({ ...a, values: a.values.filter((_, k) => k !== j) })}
            >
              ×
            </button>
          </span>
        ))}
        <input
          aria-label={`Sample attribute ${n} values`}
          aria-invalid={bad !== null}
          placeholder="pro 30%, free 70%"
          size={18}
          value={text}
          onInput={(e) => setText((e.currentTarget as HTMLInputElement).value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter') {
              e.preventDefault();
              add();
            }
          }}
          onBlur={add}
        />
      </span>
      {bad && <span class="error small">{bad}</span>}
      {a.values.length > 0 && total < 100 && <span class="muted small">the other {Math.round((100 - total) * 1000) / 1000}% lack it</span>}
      <button type="button" class="link" onClick={onRemove} aria-label={`Remove sample attribute ${n}`}>
        Remove
      </button>
    </div>
  );
}
