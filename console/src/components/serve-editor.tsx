/** Edits a serve: one variant, or a rollout with a percent per variant (ramp order = variant order). */
import type { Serve, Weight } from '../lib/types.js';
import { percentSum } from '../lib/preview.js';

export interface ServeEditorProps {
  id: string;
  label: string;
  serve: Serve;
  variants: string[];
  onChange: (s: Serve) => void;
}

export function ServeEditor({ id, label, serve, variants, onChange }: ServeEditorProps) {
  const isRollout = 'rollout' in serve;
  const weights: Weight[] = isRollout ? serve.rollout.weights : [];
  const sum = percentSum(weights);
  const toRollout = () => {
    const current = 'variant' in serve ? serve.variant : variants[0];
    onChange({ rollout: { weights: variants.map((v) => ({ variant: v, percent: v === current ? 100 : 0 })) } });
  };
  const setPercent = (variant: string, percent: number) => {
    if (!isRollout) return;
    const ws = variants.map((v) => ({ variant: v, percent: v === variant ? percent : (weights.find((w) => w.variant === v)?.percent ?? 0) }));
    onChange({ rollout: { ...serve.rollout, weights: ws } });
  };
  return (
    <fieldset class="serve">
      <legend>{label}</legend>
      <div class="row">
        <label>
          <input
            type="radio"
            name={`${id}-mode`}
            checked={!isRollout}
            onChange={() => onChange({ variant: weights.find((w) => w.percent > 0)?.variant ?? variants[0] ?? '' })}
          />{' '}
          one variant
        </label>
        <label>
          <input type="radio" name={`${id}-mode`} checked={isRollout} onChange={toRollout} /> percentage rollout
        </label>
      </div>
      {!isRollout ? (
        <label>
          Variant{' '}
          <select value={serve.variant} onChange={(e) => onChange({ variant: (e.currentTarget as HTMLSelectElement).value })}>
            {variants.map((v) => (
              <option key={v}>{v}</option>
            ))}
          </select>
        </label>
      ) : (
        <div class="weights">
          {variants.map((v) => (
            <label key={v}>
              {v}{' '}
              <input
                type="number"
                min={0}
                max={100}
                step={0.001}
                inputMode="decimal"
                aria-label={`${label}: percent for ${v}`}
                value={weights.find((w) => w.variant === v)?.percent ?? 0}
                onInput={(e) => setPercent(v, Number((e.currentTarget as HTMLInputElement).value))}
              />
              %
            </label>
          ))}
          <span class={sum === 100 ? 'muted' : 'error'} aria-live="polite">
            total {sum}%{sum === 100 ? '' : ' (must be 100)'}
          </span>
          <label>
            bucket by{' '}
            <input
              value={serve.rollout.bucketBy ?? 'key'}
              size={10}
              onInput={(e) => onChange({ rollout: { ...serve.rollout, bucketBy: (e.currentTarget as HTMLInputElement).value || 'key' } })}
            />
          </label>
        </div>
      )}
    </fieldset>
  );
}
