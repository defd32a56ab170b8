import type { FlagDefinition, FlagState } from './types.js';

/**
 * The state a new flag gets in each environment: disabled (so creating a flag changes nothing anyone sees), with
 * `offVariant` = `off` if the flag has one, else its last variant, no targets or rules, and a fallthrough that
 * serves the first variant: enabling the flag serves that variant to everyone (for a boolean flag, `on`), the
 * same as flipping a switch, while anything gradual is an explicit rollout.
 */
export function defaultFlagState(flag: FlagDefinition): Omit<FlagState, 'version'> {
  const keys = flag.variants.map((v) => v.key);
  const off = keys.includes('off') ? 'off' : keys[keys.length - 1]!;
  const first = keys[0]!;
  return { enabled: false, offVariant: off, targets: [], rules: [], fallthrough: { variant: first } };
}
