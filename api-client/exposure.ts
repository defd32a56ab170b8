/**
 * How much traffic a canary variant really gets, in words for the CLI and the console. The canary's own `percent` is
 * what its rollout serves; the flag's own targets and rules may serve the canary variant too (a canary cannot start
 * or resume while they do, but one added meanwhile pauses it), and SDKs report what they actually served. After a
 * rollback "0% of traffic" is only true when nothing else serves the variant: this says what was measured.
 */
import { formatTime } from './time.js';
import type { CanaryStatus } from './types.js';

/** One line: what else serves the canary variant, and the share of evaluations SDKs reported for it. */
export function describeExposure(c: CanaryStatus): string {
  const { outsideCanary, measured } = c.exposure;
  const parts: string[] = [];
  if (outsideCanary.length > 0) parts.push(`also served by the flag's own ${outsideCanary.map((i) => i.path).join(', ')}`);
  parts.push(
    measured === null
      ? 'no evaluations reported yet'
      : `${(100 * measured.share).toFixed(1)}% of evaluations got "${c.canary}" since ${formatTime(measured.since)} (${measured.canaryEvaluations} of ${measured.evaluations})`,
  );
  return parts.join('; ');
}
