/** Words for the API's state names, wherever the console shows them. */

/** A canary state in words (`rolled_back` → `rolled back`). */
export function canaryStateLabel(state: string): string {
  return state.replaceAll('_', ' ');
}
