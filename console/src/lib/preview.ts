/**
 * Previews how a targeting change re-assigns contexts, with the same evaluation core the SDKs run (so the preview
 * is what will happen, bucket for bucket), over a sample of synthetic contexts plus every targeted key.
 * Pure: no DOM, no network; unit-tested in test/console/preview.test.ts.
 */
import { compileFlag, compileSegment, evaluateFlag, SaltedBucketer } from '@aviary/sdk/core';
import type { AttributeScalar, AttributeValue, CompiledSegment, FlagConfig, FlagDefinition, FlagState, Segment } from '@aviary/sdk/core';

/** What a change does to a sample of contexts. */
export interface PreviewResult {
  sample: number;
  /** Served variant (or `(default)` when evaluation failed) → contexts, before and after. */
  before: Record<string, number>;
  after: Record<string, number>;
  /** Contexts whose variant changes. */
  moved: number;
  transitions: Array<{ from: string; to: string; count: number }>;
  /** Contexts served the canary variant before and not after (only with `canaryVariant`). */
  leavingCanary: number;
  /** Example keys that would leave the canary. */
  leavingExamples: string[];
}

export interface PreviewOptions {
  /** Synthetic contexts `sample-0 … sample-(n-1)`. */
  sample: number;
  /** Attributes given to every synthetic context (so rules on them can match). */
  attributes?: Record<string, AttributeValue>;
  /** Attributes whose values are spread over the synthetic contexts by share ("plan: pro 30%, free 70%"). */
  distributions?: AttributeDistribution[];
  /** The variant a running canary rolls out; contexts leaving it are counted. */
  canaryVariant?: string;
}

/**
 * One attribute of the sample contexts: each synthetic context gets one of `values` with the probability of its
 * percent; when the percents total less than 100, the rest of the contexts lack the attribute.
 */
export interface AttributeDistribution {
  attribute: string;
  values: Array<{ value: AttributeScalar; percent: number }>;
}

const DEFAULT = '(default)';

/**
 * A function giving each context key its attributes from the distributions: deterministic (a key always gets the same
 * values) and independent across attributes, by hashing the key with a salt per attribute, the contract's bucketing
 * (so the shares come out as exactly as a rollout's would).
 */
export function sampleAttributes(distributions: AttributeDistribution[]): (key: string) => Record<string, AttributeValue> {
  const pickers = distributions
    .filter((d) => d.attribute !== '' && d.values.length > 0)
    .map((d) => {
      const hasher = new SaltedBucketer(`aviary-preview:${d.attribute}`);
      // Consecutive bucket ranges, round(percent × 1000) wide, as rollout weights take them.
      let end = 0;
      const ranges = d.values.map((v) => ({
        value: v.value,
        end: (end += Math.round((Number.isFinite(v.percent) ? Math.max(0, v.percent) : 0) * 1000)),
      }));
      return { attribute: d.attribute, hasher, ranges };
    });
  return (key) => {
    const out: Record<string, AttributeValue> = {};
    for (const p of pickers) {
      const b = p.hasher.bucket(key);
      const hit = p.ranges.find((r) => b < r.end);
      if (hit) out[p.attribute] = hit.value;
    }
    return out;
  };
}

export function previewReassignment(
  definition: FlagDefinition,
  before: FlagState,
  after: FlagState,
  segments: Segment[],
  options: PreviewOptions,
): PreviewResult {
  const segs = new Map<string, CompiledSegment>();
  for (const s of segments) segs.set(s.key, compileSegment(s));
  const def = { key: definition.key, kind: definition.kind, variants: definition.variants };
  // Prerequisites are left out: the preview shows what the flag's own targeting does to contexts that pass them
  // (the required flags' states in this environment are not at hand, and would fail every context if missing).
  const own = ({ prerequisites: _p, ...s }: FlagState): FlagState => s;
  const a = compileFlag({ ...def, state: own(before) } as FlagConfig, segs);
  const b = compileFlag({ ...def, state: own(after) } as FlagConfig, segs);
  const keys = new Set<string>();
  for (let i = 0; i < options.sample; i++) keys.add(`sample-${i}`);
  for (const t of [...before.targets, ...after.targets]) for (const k of t.keys) keys.add(k);
  const result: PreviewResult = { sample: keys.size, before: {}, after: {}, moved: 0, transitions: [], leavingCanary: 0, leavingExamples: [] };
  const trans = new Map<string, number>();
  const attrs = options.attributes ?? {};
  const spread = sampleAttributes(options.distributions ?? []);
  for (const key of keys) {
    const ctx = { ...attrs, ...spread(key), key };
    const va = evaluateFlag(a, ctx, null, true).variant ?? DEFAULT;
    const vb = evaluateFlag(b, ctx, null, true).variant ?? DEFAULT;
    result.before[va] = (result.before[va] ?? 0) + 1;
    result.after[vb] = (result.after[vb] ?? 0) + 1;
    if (va !== vb) {
      result.moved++;
      const t = `${va}\u0000${vb}`;
      trans.set(t, (trans.get(t) ?? 0) + 1);
      if (options.canaryVariant !== undefined && va === options.canaryVariant) {
        result.leavingCanary++;
        if (result.leavingExamples.length < 5) result.leavingExamples.push(key);
      }
    }
  }
  result.transitions = [...trans].map(([t, count]) => {
    const [from, to] = t.split('\u0000') as [string, string];
    return { from, to, count };
  });
  result.transitions.sort((x, y) => y.count - x.count);
  return result;
}

/** Sum of rollout percents, rounded to the three decimals the contract allows (floating point would show 99.99999). */
export function percentSum(weights: Array<{ percent: number }>): number {
  return Math.round(weights.reduce((s, w) => s + (Number.isFinite(w.percent) ? w.percent : 0), 0) * 1000) / 1000;
}
