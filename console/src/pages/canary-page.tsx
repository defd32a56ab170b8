/**
 * A canary: stage timeline, per-variant error rate and p95 latency over time (from the metrics route, i.e. the SDKs'
 * own outcomes), the guard's latest decision with its evidence, and the controls.
 */
import { useCan } from '../lib/me.js';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Modal } from '../components/modal.js';
import { TimeChart } from '../components/time-chart.js';
import { describeExposure, formatLocalTime, timeMs } from '@aviary/api-client';
import { api, ApiError, errorText } from '../lib/api.js';
import { canaryStateLabel } from '../lib/labels.js';
import { useLive } from '../lib/live.js';
import { seriesByVariant } from '../lib/metrics-series.js';
import { stageLabel, stageStarts } from '../lib/canary-stages.js';
import { flagPath, onLinkClick } from '../lib/router.js';
import type { Canary, CanaryStage, CanaryStatus, Flag, SideSummary } from '../lib/types.js';
import { useResource } from '../lib/use-resource.js';

const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
const ms = (v: number) => `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`;

type Action = 'pause' | 'resume' | 'advance' | 'rollback' | 'promote';
const ACTIONS: Record<Action, { label: string; what: string; danger?: boolean }> = {
  pause: { label: 'Pause', what: 'Hold the current stage. The guard keeps watching and still rolls back on a regression.' },
  resume: { label: 'Resume', what: 'Continue the rollout; the stage clock continues where it stopped.' },
  advance: { label: 'Advance', what: 'Move to the next stage now, skipping the rest of the hold time.' },
  rollback: { label: 'Roll back', what: 'Send all of the canary’s traffic to the control variant at once.', danger: true },
  promote: { label: 'Promote', what: 'Serve the canary variant to everyone and finish the canary.', danger: true },
};

export function CanaryPage({ flagKey, environment }: { flagKey: string; environment: string }) {
  const can = useCan();
  const live = useLive();
  // The path parameters of every canary and metrics call of this page.
  const path = useMemo(() => ({ key: flagKey, env: environment }), [flagKey, environment]);
  // Outcomes arrive without changing the environment's version, so the comparison and the charts refresh on their
  // own clock too.
  const [chartTick, setChartTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setChartTick((n) => n + 1), 5000);
    return () => clearInterval(t);
  }, []);
  const canary = useResource(
    () =>
      api
        .get('/api/v1/flags/{key}/environments/{env}/canary', { params: { path } })
        .catch((e: unknown) => (e instanceof ApiError && e.status === 404 ? null : Promise.reject(e))),
    [path, live.tick, chartTick],
  );
  // Per minute (the finest step the metrics API has: SDKs report per minute), from a minute before the canary started
  // (at most a day back) or the last hour, whichever is longer, so stages of a few minutes each get their own points.
  const startedAt = canary.data?.startedAt;
  const metrics = useResource(() => {
    const now = Date.now();
    const started = startedAt ? timeMs(startedAt) - 60_000 : now;
    const from = Math.max(now - 24 * 3600_000, Math.min(now - 3600_000, started));
    return api.get('/api/v1/flags/{key}/environments/{env}/metrics', { params: { path, query: { from: new Date(from).toISOString(), step: 60 } } });
  }, [path, live.tick, chartTick, startedAt]);
  // When each stage started, for the charts' boundaries: the canary's own audit entries (start, advances; `search` is
  // a substring of the key, so the exact key is checked below).
  const audit = useResource(
    () =>
      startedAt
        ? api.get('/api/v1/audit', { params: { query: { search: flagKey, environment, resourceType: 'canary', from: startedAt, limit: 500 } } })
        : Promise.resolve(null),
    [path, live.tick, startedAt, canary.data?.stage, canary.data?.state],
  );
  const flag = useResource(() => api.get('/api/v1/flags/{key}', { params: { path: { key: flagKey } } }), [flagKey]);

  const c = canary.data;
  const variants = c ? [c.control, c.canary] : [];
  const series = useMemo(() => (metrics.data && c ? seriesByVariant(metrics.data, variants) : null), [metrics.data, c?.control, c?.canary]);
  // From the canary's start (or the hour's start, for older canaries) to now.
  const marks = useMemo(
    () =>
      c
        ? stageStarts(
            c,
            (audit.data?.entries ?? []).filter((e) => e.resourceKey === flagKey && e.environment === environment),
          )
        : [],
    [c, audit.data],
  );
  const win = useMemo((): [number, number] | undefined => {
    if (!c || !metrics.data) return undefined;
    const from = Math.max(timeMs(metrics.data.from), timeMs(c.startedAt) - 60_000);
    return [Math.floor(from / 1000), Math.floor(timeMs(metrics.data.to) / 1000)];
  }, [c?.startedAt, metrics.data]);

  return (
    <section aria-labelledby="canary-title">
      <p>
        <a href={flagPath(flagKey)} onClick={onLinkClick}>
          ← {flagKey}
        </a>
      </p>
      <h1 id="canary-title">
        Canary: {flagKey} in {environment}
      </h1>
      {canary.error && (
        <p class="error" role="alert">
          {canary.error}
        </p>
      )}
      {canary.data === null && flag.data && can('putCanary', environment) && <StartCanary flag={flag.data} path={path} onStarted={canary.reload} />}
      {c && (
        <>
          <div class="canary-head">
            <span class={`badge state-${c.state}`} data-testid="canary-state">
              {canaryStateLabel(c.state)}
            </span>
            <span>
              <strong>{c.canary}</strong> against <strong>{c.control}</strong>, now at <strong>{c.percent}%</strong> of traffic
            </span>
          </div>
          <p class={c.exposure.outsideCanary.length > 0 ? 'warn' : 'muted'} data-testid="exposure">
            Exposure: {describeExposure(c)}
          </p>
          <Timeline stages={c.stages} current={c.stage} state={c.state} />
          <Decision c={c} />
          <Controls c={c} path={path} onDone={canary.reload} />
          <h2>Outcomes per variant</h2>
          {metrics.error && <p class="error">{metrics.error}</p>}
          {series && (
            <div class="charts" data-testid="charts">
              <TimeChart
                title="Error rate"
                unit="errors ÷ outcomes per minute"
                times={series.times}
                series={variants.map((v) => ({ label: v, values: series.errorRate[v] ?? [] }))}
                format={pct}
                window={win}
                marks={marks}
              />
              <TimeChart
                title="p95 latency"
                unit="milliseconds"
                times={series.times}
                series={variants.map((v) => ({ label: v, values: series.p95[v] ?? [] }))}
                format={ms}
                window={win}
                marks={marks}
              />
            </div>
          )}
          {metrics.data && (
            <table class="totals" data-testid="totals">
              <caption>Since {formatLocalTime(metrics.data.from)}, all stages</caption>
              <thead>
                <tr>
                  <th scope="col">Variant</th>
                  <th scope="col">Evaluations</th>
                  <th scope="col">Outcomes</th>
                  <th scope="col">Errors</th>
                  <th scope="col">p50</th>
                  <th scope="col">p95</th>
                  <th scope="col">p99</th>
                </tr>
              </thead>
              <tbody>
                {Object.entries(metrics.data.totals).map(([v, t]) => (
                  <tr key={v} data-variant={v}>
                    <th scope="row">{v}</th>
                    <td>{t.evaluations}</td>
                    <td>{t.outcomes}</td>
                    <td>{t.errors}</td>
                    <td>{t.latencyMs.p50 === null ? '–' : ms(t.latencyMs.p50)}</td>
                    <td>{t.latencyMs.p95 === null ? '–' : ms(t.latencyMs.p95)}</td>
                    <td>{t.latencyMs.p99 === null ? '–' : ms(t.latencyMs.p99)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}

function Timeline({ stages, current, state }: { stages: CanaryStage[]; current: number; state: string }) {
  return (
    <ol class="timeline" aria-label="Stages">
      {stages.map((s, i) => {
        const status =
          i < current || state === 'promoted' || state === 'completed'
            ? 'done'
            : i === current
              ? state === 'rolled_back'
                ? 'failed'
                : 'current'
              : 'todo';
        return (
          <li key={i} class={status} aria-current={i === current ? 'step' : undefined}>
            <span class="dot" aria-hidden="true" />
            {stageLabel(s)}
            <span class="sr-only"> ({status})</span>
          </li>
        );
      })}
    </ol>
  );
}

function Decision({ c }: { c: CanaryStatus }) {
  const cmp = c.comparison;
  if (!cmp) {
    const last = c.lastDecision;
    return last ? (
      <section class={`decision d-${last.decision}`} aria-labelledby="decision-title" data-testid="decision">
        <h2 id="decision-title">
          Guard's last decision: <span class="badge">{last.decision}</span>
        </h2>
        <p>{last.why}</p>
        <p class="muted small">at {formatLocalTime(last.at)}</p>
      </section>
    ) : (
      <p class="muted">The guard has no outcomes to compare yet.</p>
    );
  }
  const side = (name: string, s: SideSummary) => (
    <tr>
      <th scope="row">{name}</th>
      <td>{s.evaluations}</td>
      <td>{s.outcomes}</td>
      <td>{s.errors}</td>
      <td>{s.errorRate === null ? '–' : pct(s.errorRate)}</td>
      <td>{s.latencyMs === null || s.latencyMs.p50 === null ? '–' : ms(s.latencyMs.p50)}</td>
      <td>{s.latencyMs === null || s.latencyMs.p95 === null ? '–' : ms(s.latencyMs.p95)}</td>
    </tr>
  );
  const er = cmp.errorRate;
  const lat = cmp.latency;
  return (
    <section class={`decision d-${cmp.decision}`} aria-labelledby="decision-title" data-testid="decision">
      <h2 id="decision-title">
        Guard: <span class="badge">{cmp.decision}</span>
      </h2>
      <p>{cmp.why}</p>
      <div class="table-wrap">
        <table aria-labelledby="decision-title">
          <thead>
            <tr>
              <th scope="col">Side</th>
              <th scope="col">Evaluations</th>
              <th scope="col">Outcomes</th>
              <th scope="col">Errors</th>
              <th scope="col">Error rate</th>
              <th scope="col">p50</th>
              <th scope="col">p95</th>
            </tr>
          </thead>
          <tbody>
            {side(`control (${c.control})`, cmp.control)}
            {side(`canary (${c.canary})`, cmp.canary)}
          </tbody>
        </table>
      </div>
      <dl class="evidence">
        <div>
          <dt>Error rate, canary − control</dt>
          <dd>
            {pp(er.difference)} (interval {pp(er.interval[0]!)} to {pp(er.interval[1]!)}; limit {pp(er.limit)})
            {er.breach ? ' — breach' : er.enoughSamples ? ' — within limit' : ' — not enough samples yet'}
          </dd>
        </div>
        <div>
          <dt>Latency, canary vs control</dt>
          <dd>
            {lat
              ? `${signed(lat.difference)}% (interval ${signed(lat.interval[0]!)}% to ${signed(lat.interval[1]!)}%; limit ${lat.limit}%)${
                  lat.p95IncreasePercent !== null ? `, p95 ${signed(lat.p95IncreasePercent)}%` : ''
                }${lat.breach ? ' — breach' : lat.enoughSamples ? ' — within limit' : ' — not enough samples yet'}`
              : 'no latency samples yet'}
          </dd>
        </div>
        <div>
          <dt>Method</dt>
          <dd>{cmp.method}</dd>
        </div>
        {c.holdRemainingSeconds !== null && (
          <div>
            <dt>Hold</dt>
            <dd>
              {Math.round(c.heldSeconds)} s in this stage; {Math.ceil(c.holdRemainingSeconds)} s before it may advance
            </dd>
          </div>
        )}
      </dl>
      <p class="muted small">as of {formatLocalTime(cmp.at)}</p>
    </section>
  );
}

/** Percentage points, signed. */
function pp(v: number): string {
  return `${v >= 0 ? '+' : ''}${(v * 100).toFixed(2)} pp`;
}

function signed(v: number): string {
  return `${v >= 0 ? '+' : ''}${v.toFixed(1)}`;
}

type CanaryPath = { key: string; env: string };

/** The canary actions, each its own operation in the spec. */
const send: Record<Action, (path: CanaryPath, body: { reason?: string }) => Promise<CanaryStatus>> = {
  pause: (path, body) => api.post('/api/v1/flags/{key}/environments/{env}/canary/pause', { params: { path }, body }),
  resume: (path, body) => api.post('/api/v1/flags/{key}/environments/{env}/canary/resume', { params: { path }, body }),
  advance: (path, body) => api.post('/api/v1/flags/{key}/environments/{env}/canary/advance', { params: { path }, body }),
  rollback: (path, body) => api.post('/api/v1/flags/{key}/environments/{env}/canary/rollback', { params: { path }, body }),
  promote: (path, body) => api.post('/api/v1/flags/{key}/environments/{env}/canary/promote', { params: { path }, body }),
};

function Controls({ c, path, onDone }: { c: CanaryStatus; path: CanaryPath; onDone: () => void }) {
  const live = useLive();
  const can = useCan();
  const [action, setAction] = useState<Action | null>(null);
  const [reason, setReason] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // As the API allows (server/canary/state-machine.ts): a rolled-back canary may still be promoted, for example when
  // the regression turned out to be elsewhere.
  const possible: Action[] =
    c.state === 'running'
      ? ['pause', 'advance', 'rollback', 'promote']
      : c.state === 'paused'
        ? ['resume', 'advance', 'rollback', 'promote']
        : c.state === 'rolled_back'
          ? ['promote']
          : [];
  // Only what the role may do (an oncall person: pause and rollback).
  const available = possible.filter((a) => can(`${a}Canary`, path.env));
  const run = async (e: Event) => {
    e.preventDefault();
    if (!action) return;
    setBusy(true);
    setError(null);
    try {
      await send[action](path, reason.trim() ? { reason: reason.trim() } : {});
      setAction(null);
      setReason('');
      live.refresh();
      onDone();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  if (possible.length === 0) return <p class="muted">This canary is {canaryStateLabel(c.state)}; nothing to steer.</p>;
  if (available.length === 0) return null;
  return (
    <fieldset class="controls" aria-label="Canary controls">
      {available.map((a) => (
        <button type="button" key={a} class={ACTIONS[a].danger ? (a === 'rollback' ? 'kill' : 'revive') : ''} onClick={() => setAction(a)}>
          {ACTIONS[a].label}
        </button>
      ))}
      <Modal
        title={action ? `${ACTIONS[action].label} the canary` : ''}
        open={action !== null}
        onClose={() => setAction(null)}
        danger={action === 'rollback'}
      >
        {action && (
          <form onSubmit={run}>
            <p>{ACTIONS[action].what}</p>
            <label for="canary-reason">Reason (audit log)</label>
            <input
              id="canary-reason"
              value={reason}
              maxLength={1000}
              onInput={(e) => setReason((e.currentTarget as HTMLInputElement).value)}
              autofocus
            />
            {error && (
              <p class="error" role="alert">
                {error}
              </p>
            )}
            <div class="actions">
              <button type="button" onClick={() => setAction(null)}>
                Cancel
              </button>
              <button type="submit" disabled={busy}>
                {ACTIONS[action].label}
              </button>
            </div>
          </form>
        )}
      </Modal>
    </fieldset>
  );
}

/**
 * The guard settings of the Canary schema (openapi.yaml `CanaryGuard`, docs/canary-analysis.md), each with the
 * server's default: a field left empty is not sent, and the server applies that default.
 */
const GUARD_FIELDS = [
  {
    key: 'maxErrorRateIncrease',
    label: 'Max error-rate increase (percentage points)',
    // The API takes an absolute rate (0.01); people think in points (1).
    toApi: (v: number) => v / 100,
    placeholder: '1',
    step: 'any',
    hint: 'Default 1 point (0.01): roll back when the canary’s error rate is significantly more than this above the control’s.',
  },
  {
    key: 'maxLatencyIncreasePercent',
    label: 'Max latency increase (%)',
    toApi: (v: number) => v,
    placeholder: '20',
    step: 'any',
    hint: 'Default 20 %: roll back when the canary is significantly slower than the control by more than this (mean and p95).',
  },
  {
    key: 'minSamples',
    label: 'Minimum samples per side',
    toApi: (v: number) => v,
    placeholder: '500',
    step: '1',
    hint: 'Default 500: the guard decides nothing (no rollback, no advance) before each side has this many outcomes.',
  },
  {
    key: 'confidence',
    label: 'Confidence',
    toApi: (v: number) => v,
    placeholder: '0.95',
    step: 'any',
    hint: 'Default 0.95: the chance of no false rollback over the whole canary (0.5 to 0.9999; higher waits for more evidence).',
  },
] as const;

type GuardKey = (typeof GUARD_FIELDS)[number]['key'];

function StartCanary({ flag, path, onStarted }: { flag: Flag; path: CanaryPath; onStarted: () => void }) {
  const variants = flag.variants.map((v) => v.key);
  const [control, setControl] = useState(variants.includes('off') ? 'off' : (variants[0] ?? ''));
  const [canaryV, setCanary] = useState(variants.includes('on') ? 'on' : (variants[1] ?? variants[0] ?? ''));
  const [stages, setStages] = useState('1, 5, 25, 50, 100');
  const [duration, setDuration] = useState('1800');
  const [bucketBy, setBucketBy] = useState('');
  const [guard, setGuard] = useState<Record<GuardKey, string>>({
    maxErrorRateIncrease: '',
    maxLatencyIncreasePercent: '',
    minSamples: '',
    confidence: '',
  });
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const parsed: CanaryStage[] = stages
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((s) => (s.startsWith('segment:') ? { segment: s.slice(8) } : { percent: Number(s) }));
    // Only the settings the user gave: the server fills in the rest with its defaults (and validates what is sent).
    const guardDoc: Record<string, number> = {};
    for (const f of GUARD_FIELDS) if (guard[f.key].trim() !== '') guardDoc[f.key] = f.toApi(Number(guard[f.key]));
    const doc: Canary = {
      control,
      canary: canaryV,
      stages: parsed,
      ...(duration.trim() !== '' ? { stageDurationSeconds: Number(duration) } : {}),
      ...(bucketBy.trim() ? { bucketBy: bucketBy.trim() } : {}),
      ...(Object.keys(guardDoc).length ? { guard: guardDoc } : {}),
    };
    try {
      await api.put('/api/v1/flags/{key}/environments/{env}/canary', { params: { path }, body: doc });
      onStarted();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form class="editor" onSubmit={submit} aria-labelledby="start-title">
      <h2 id="start-title">Start a canary</h2>
      <div class="row">
        <label>
          Control{' '}
          <select value={control} onChange={(e) => setControl((e.currentTarget as HTMLSelectElement).value)}>
            {variants.map((v) => (
              <option key={v}>{v}</option>
            ))}
          </select>
        </label>
        <label>
          Canary{' '}
          <select value={canaryV} onChange={(e) => setCanary((e.currentTarget as HTMLSelectElement).value)}>
            {variants.map((v) => (
              <option key={v}>{v}</option>
            ))}
          </select>
        </label>
      </div>
      <label class="block">
        Stages (percents; <code>segment:internal</code> for a cohort)
        <input value={stages} onInput={(e) => setStages((e.currentTarget as HTMLInputElement).value)} />
      </label>
      <label>
        Hold each stage (seconds){' '}
        <input
          type="number"
          min={0}
          value={duration}
          placeholder="1800"
          aria-describedby="hint-duration"
          onInput={(e) => setDuration((e.currentTarget as HTMLInputElement).value)}
        />
      </label>
      <span class="hint muted small" id="hint-duration">
        {' '}
        Default 1800 (30 minutes): a stage advances only after this long and while the guard finds it healthy.
      </span>
      <label class="block">
        Bucket by (context attribute)
        <input
          value={bucketBy}
          placeholder="key"
          aria-describedby="hint-bucketBy"
          onInput={(e) => setBucketBy((e.currentTarget as HTMLInputElement).value)}
        />
      </label>
      <span class="hint muted small" id="hint-bucketBy">
        Default <code>key</code>: which attribute the percent stages split traffic by.
      </span>
      <fieldset class="guard-fields">
        <legend>Guard (empty fields use the default)</legend>
        {GUARD_FIELDS.map((f) => (
          <div key={f.key}>
            <label for={`guard-${f.key}`}>{f.label}</label>
            <input
              id={`guard-${f.key}`}
              type="number"
              step={f.step}
              placeholder={f.placeholder}
              aria-describedby={`hint-${f.key}`}
              value={guard[f.key]}
              onInput={(e) => setGuard({ ...guard, [f.key]: (e.currentTarget as HTMLInputElement).value })}
            />
            <span class="hint" id={`hint-${f.key}`}>
              {f.hint}
            </span>
          </div>
        ))}
      </fieldset>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="actions">
        <button type="submit">Start canary</button>
      </div>
    </form>
  );
}
