/**
 * A small uPlot line chart of per-variant series over time, with the same numbers in a table for screen readers
 * (and for anyone who wants the exact values).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { ensureUsableLanguage } from '../lib/locale.js';

// uPlot is loaded with the first chart: the incident path (sign in, find, kill) never waits for it.
let loading: Promise<typeof uPlot> | null = null;
function loadUPlot(): Promise<typeof uPlot> {
  // uPlot formats numbers with navigator.language as it loads: make sure Intl accepts it first.
  ensureUsableLanguage();
  loading ??= Promise.all([import('uplot'), import('uplot/dist/uPlot.min.css')]).then(([m]) => m.default);
  return loading;
}

export interface ChartSeries {
  label: string;
  values: Array<number | null>;
}

export interface TimeChartProps {
  title: string;
  /** Epoch seconds, ascending. */
  times: number[];
  series: ChartSeries[];
  unit: string;
  format: (v: number) => string;
  /** The time window to show (epoch seconds), so a single minute of data sits at its time, not mid-axis. */
  window?: [number, number];
  /** Vertical markers (epoch seconds), e.g. when each canary stage started: a line with its label over the plot. */
  marks?: ChartMark[];
}

export interface ChartMark {
  at: number;
  label: string;
}

// Distinguishable for common colour-vision deficiencies (Okabe–Ito), dark enough on white.
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9'];

export function TimeChart({ title, times, series, unit, format, window: win, marks = [] }: TimeChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    const el = box.current;
    if (!el || times.length === 0) return;
    let plot: uPlot | null = null;
    let stopped = false;
    const resize = () => plot?.setSize({ width: Math.max(280, Math.min(el.clientWidth, 900)), height: 220 });
    loadUPlot()
      .then((UPlot) => {
        if (stopped) return;
        const width = Math.max(280, Math.min(el.clientWidth || 600, 900));
        plot = new UPlot(
          {
            width,
            height: 220,
            // Marks are elements in uPlot's overlay (`u.over`), placed at their time on every redraw (resize, zoom).
            hooks: { draw: [(u: uPlot) => placeMarks(u, marks)] },
            series: [
              {},
              ...series.map((s, i) => ({
                label: s.label,
                stroke: COLOURS[i % COLOURS.length]!,
                width: 2,
                points: { show: true, size: 6 },
                value: (_u: uPlot, v: number | null) => (v === null ? '–' : format(v)),
              })),
            ],
            axes: [{}, { values: (_u: uPlot, vs: number[]) => vs.map((v) => format(v)), size: 60 }],
            scales: {
              x: {
                time: true,
                ...(win ? { range: (): uPlot.Range.MinMax => [Math.min(win[0], times[0]! - 60), Math.max(win[1], times.at(-1)! + 60)] } : {}),
              },
              // Rates and latencies are compared against zero, not against each other's wiggles.
              y: { range: (_u: uPlot, _min: number, max: number): uPlot.Range.MinMax => [0, max > 0 ? max * 1.15 : 1] },
            },
          },
          [times, ...series.map((s) => s.values)] as uPlot.AlignedData,
          el,
        );
        window.addEventListener('resize', resize);
      })
      .catch((err: unknown) => {
        // The numbers are all in the table below: say so instead of leaving an empty box.
        if (!stopped) setFailed(err instanceof Error ? err.message : String(err));
      });
    return () => {
      stopped = true;
      window.removeEventListener('resize', resize);
      plot?.destroy();
    };
  }, [times, series, win?.[0], win?.[1], marks.map((m) => `${m.at}:${m.label}`).join()]);

  return (
    <figure class="chart" aria-label={title}>
      <figcaption>{title}</figcaption>
      {times.length === 0 ? (
        <p class="muted">No outcomes reported yet.</p>
      ) : failed !== null ? (
        <p class="muted">The chart could not be drawn ({failed}); the numbers are in the table below.</p>
      ) : (
        <div ref={box} class="plot" aria-hidden="true" />
      )}
      {times.length > 0 && marks.length > 0 && (
        <p class="sr-only">Stages started: {marks.map((m) => `${m.label} at ${new Date(m.at * 1000).toLocaleTimeString()}`).join('; ')}.</p>
      )}
      {times.length > 0 && (
        <details>
          <summary>Data ({unit})</summary>
          <table class="small">
            <caption class="sr-only">
              {title}: data ({unit})
            </caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                {series.map((s) => (
                  <th scope="col" key={s.label}>
                    {s.label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {times.map((t, i) => (
                <tr key={t}>
                  <th scope="row">{new Date(t * 1000).toLocaleTimeString()}</th>
                  {series.map((s) => (
                    <td key={s.label} data-series={s.label}>
                      {s.values[i] === null || s.values[i] === undefined ? '–' : format(s.values[i]!)}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
    </figure>
  );
}

/** Draws the marks as absolutely placed lines in the plot's overlay; a mark outside the x range is hidden. */
function placeMarks(u: uPlot, marks: ChartMark[]): void {
  for (const old of u.over.querySelectorAll('.chart-mark')) old.remove();
  const [min, max] = [u.scales.x!.min ?? -Infinity, u.scales.x!.max ?? Infinity];
  for (const m of marks) {
    if (m.at < min || m.at > max) continue;
    const el = document.createElement('div');
    el.className = 'chart-mark';
    el.style.left = `${u.valToPos(m.at, 'x')}px`;
    el.title = `${m.label} from ${new Date(m.at * 1000).toLocaleTimeString()}`;
    el.dataset.stage = m.label;
    const label = document.createElement('span');
    label.textContent = m.label;
    el.append(label);
    u.over.append(el);
  }
}
