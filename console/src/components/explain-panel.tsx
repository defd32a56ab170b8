/**
 * "Why does this user get this variant?" A context described without JSON (its key and attributes, each with a
 * type), explained by the server with the shared evaluation core (POST …/explain): the kill switch, prerequisites,
 * the target list, every rule with each condition's result and the context's actual value, the bucket against the
 * rollout's ranges, and what SDKs serve.
 */
import { useState } from 'preact/hooks';
import { formatLocalTime } from '@aviary/api-client';
import { api, errorText } from '../lib/api.js';
import type { Condition, ExplainServe, FlagExplanation as Explanation } from '../lib/types.js';
type Scalar = string | number | boolean;

interface Row {
  name: string;
  type: 'text' | 'number' | 'boolean';
  value: string;
}

/** The words for each operator (CONTRACT §1), as the rule editor uses them. */
const OP_WORDS: Record<string, string> = {
  in: 'is one of',
  startsWith: 'starts with',
  endsWith: 'ends with',
  contains: 'contains',
  matches: 'matches',
  lt: '<',
  lte: '≤',
  gt: '>',
  gte: '≥',
  semverEq: 'is version',
  semverLt: 'is a version before',
  semverGt: 'is a version after',
  before: 'is before',
  after: 'is after',
  exists: 'is present',
};

function conditionText(c: Condition): string {
  if ('segment' in c) return `${c.negate ? 'not ' : ''}in segment ${c.segment}`;
  const values = (c.values ?? []).map((v) => JSON.stringify(v)).join(', ');
  return `${c.attribute} ${c.negate ? 'not ' : ''}${OP_WORDS[c.op] ?? c.op}${c.op === 'exists' ? '' : ` ${values}`}`;
}

function parseValue(row: Row): Scalar | { error: string } {
  if (row.type === 'number') {
    const n = Number(row.value);
    return row.value.trim() === '' || !Number.isFinite(n) ? { error: `${row.name}: "${row.value}" is not a number` } : n;
  }
  if (row.type === 'boolean') return row.value === 'true';
  return row.value;
}

function ServeText({ serve }: { serve: ExplainServe }) {
  const r = serve.rollout;
  if (!r) return serve.variant ? <code>{serve.variant}</code> : <span class="muted">nothing</span>;
  return (
    <span>
      a rollout by <code>{r.bucketBy}</code>:{' '}
      {r.bucket === undefined ? (
        <span>
          the context has no {r.bucketBy}, so it is not placed
          {serve.variant ? (
            <>
              {' '}
              and gets <code>{serve.variant}</code>
            </>
          ) : null}
        </span>
      ) : (
        <span>
          bucket <strong data-testid="bucket">{r.bucket}</strong> of 100000 ({(r.bucket / 1000).toFixed(3)}%) falls in <code>{r.variant}</code>
        </span>
      )}
      <span class="muted small">
        {' '}
        (ranges:{' '}
        {r.ranges.map((g, i) => (
          <span key={g.variant + g.fromBucket}>
            {i > 0 && ', '}
            {g.variant} {g.fromBucket}–{g.toBucket - 1}
          </span>
        ))}
        ; salt {r.salt})
      </span>
    </span>
  );
}

export function ExplainPanel({ flag, environment }: { flag: string; environment: string }) {
  const [key, setKey] = useState('');
  const [rows, setRows] = useState<Row[]>([{ name: '', type: 'text', value: '' }]);
  const [answer, setAnswer] = useState<Explanation | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const setRow = (i: number, patch: Partial<Row>) => setRows((rs) => rs.map((r, j) => (j === i ? { ...r, ...patch } : r)));

  const explain = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const context: Record<string, Scalar> = {};
    if (key.trim()) context.key = key.trim();
    for (const row of rows) {
      if (!row.name.trim()) continue;
      const v = parseValue(row);
      if (typeof v === 'object') return setError(v.error);
      context[row.name.trim()] = v;
    }
    setBusy(true);
    try {
      setAnswer(
        await api.post('/api/v1/flags/{key}/environments/{env}/explain', { params: { path: { key: flag, env: environment } }, body: { context } }),
      );
    } catch (err) {
      setAnswer(null);
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const x = answer;
  return (
    <section class="explain" aria-labelledby="explain-title">
      <h2 id="explain-title">Why does a user get a variant in {environment}?</h2>
      <form onSubmit={explain}>
        <label>
          Context key <input value={key} onInput={(e) => setKey((e.currentTarget as HTMLInputElement).value)} placeholder="user-42" />
        </label>
        <fieldset>
          <legend>Attributes</legend>
          {rows.map((r, i) => (
            <div class="row" key={i}>
              <input
                aria-label={`Attribute ${i + 1} name`}
                value={r.name}
                placeholder="plan"
                onInput={(e) => setRow(i, { name: (e.currentTarget as HTMLInputElement).value })}
              />
              <select
                aria-label={`Attribute ${i + 1} type`}
                value={r.type}
                onChange={(e) => setRow(i, { type: (e.currentTarget as HTMLSelectElement).value as Row['type'] })}
              >
                <option value="text">text</option>
                <option value="number">number</option>
                <option value="boolean">true/false</option>
              </select>
              {r.type === 'boolean' ? (
                <select
                  aria-label={`Attribute ${i + 1} value`}
                  value={r.value === 'true' ? 'true' : 'false'}
                  onChange={(e) => setRow(i, { value: (e.currentTarget as HTMLSelectElement).value })}
                >
                  <option value="true">true</option>
                  <option value="false">false</option>
                </select>
              ) : (
                <input
                  aria-label={`Attribute ${i + 1} value`}
                  value={r.value}
                  placeholder="pro"
                  onInput={(e) => setRow(i, { value: (e.currentTarget as HTMLInputElement).value })}
                />
              )}
              <button type="button" aria-label={`Remove attribute ${i + 1}`} onClick={() => setRows((rs) => rs.filter((_, j) => j !== i))}>
                ×
              </button>
            </div>
          ))}
          <button type="button" onClick={() => setRows((rs) => [...rs, { name: '', type: 'text', value: '' }])}>
            Add attribute
          </button>
        </fieldset>
        <button type="submit" disabled={busy}>
          Explain
        </button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {x && (
        <div data-testid="explanation">
          <p class="result" data-testid="explain-result">
            Serves <strong>{x.result.variant ?? '(the caller’s default)'}</strong> — {x.result.reason.kind}
            {x.result.reason.ruleId ? ` (rule ${x.result.reason.ruleId})` : ''}
            {x.result.reason.prerequisiteKey ? ` (prerequisite ${x.result.reason.prerequisiteKey})` : ''}, version {x.version}
          </p>
          {x.malformed && <p class="error">This flag cannot be evaluated: {x.malformed}</p>}
          <ol class="steps">
            <li class={x.decidedBy === 'off' ? 'decided' : ''} data-step="off">
              Kill switch:{' '}
              {x.enabled ? (
                'on'
              ) : x.killed ? (
                <span>
                  killed {formatLocalTime(x.killed.at)}
                  {x.killed.reason ? ` (${x.killed.reason})` : ''}: everyone gets the off variant
                </span>
              ) : (
                'off: everyone gets the off variant'
              )}
            </li>
            <li class={x.decidedBy === 'prerequisite' ? 'decided' : ''} data-step="prerequisites">
              Prerequisites:{' '}
              {x.prerequisites.length === 0
                ? 'none'
                : x.prerequisites.map((p, i) => (
                    <span key={p.flag}>
                      {i > 0 && '; '}
                      {p.flag} must serve {p.variants.join(' or ')}:{' '}
                      {p.missing ? 'no such flag' : p.off ? 'it is off' : `it serves ${p.served?.variant ?? 'nothing'}`} {p.holds ? '✓' : '✗'}
                    </span>
                  ))}
            </li>
            <li class={x.decidedBy === 'target' ? 'decided' : ''} data-step="targets">
              Individual targets: {x.target ? `${x.target.key} is listed for ${x.target.variant}` : 'the key is not listed'}
            </li>
            <li data-step="rules">
              Rules (the first that matches serves):
              {x.rules.length === 0 ? (
                ' none'
              ) : (
                <table class="small">
                  <caption class="sr-only">Rules and their conditions for this context</caption>
                  <thead>
                    <tr>
                      <th scope="col">Rule</th>
                      <th scope="col">Conditions (actual value)</th>
                      <th scope="col">Matches</th>
                      <th scope="col">Serves</th>
                    </tr>
                  </thead>
                  <tbody>
                    {x.rules.map((r) => (
                      <tr key={r.id} class={r.decided ? 'decided' : ''} data-rule={r.id}>
                        <th scope="row">
                          {r.index + 1}. {r.id}
                          {r.decided && <span class="badge"> decided</span>}
                        </th>
                        <td>
                          {r.conditions.length === 0 ? (
                            <span class="muted">everyone</span>
                          ) : (
                            <ul>
                              {r.conditions.map((c, j) => (
                                <li key={j} data-holds={String(c.holds)}>
                                  {c.holds ? '✓' : '✗'} {conditionText(c.condition)}
                                  {'attribute' in c.condition && (
                                    <span class="muted"> ({c.actual === undefined ? 'not in the context' : JSON.stringify(c.actual)})</span>
                                  )}
                                </li>
                              ))}
                            </ul>
                          )}
                        </td>
                        <td>{r.matches ? 'yes' : 'no'}</td>
                        <td>
                          <ServeText serve={r.serve} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </li>
            <li class={x.decidedBy === 'fallthrough' ? 'decided' : ''} data-step="fallthrough">
              Everyone else: <ServeText serve={x.fallthrough} />
            </li>
          </ol>
        </div>
      )}
    </section>
  );
}
