/** Change requests (CONTRACT §11): telling a held PUT from a written one, and saying what a request would change. */
import type { Schemas } from './types.js';

type ChangeRequest = Schemas['ChangeRequest'];
type DiffEntry = Schemas['ChangeRequestDiffEntry'];

/**
 * Whether a `PUT` of a flag's state was held as a change request (`202`, the environment requires approval) rather
 * than written (`200`, the stored state).
 */
export function isChangeRequest(answer: Schemas['FlagStateWriteResult'] | ChangeRequest): answer is ChangeRequest {
  return 'baseVersion' in answer && 'status' in answer;
}

const show = (v: unknown) => (v === undefined ? '' : JSON.stringify(v));

/** One line per difference: `~ /fallthrough/variant: "off" → "on"`, `+ /rules/1: {...}`, `- /targets/0: {...}`. */
export function describeDiff(diff: readonly DiffEntry[]): string[] {
  return diff.map((d) =>
    d.op === 'add'
      ? `+ ${d.path || '/'}: ${show(d.after)}`
      : d.op === 'remove'
        ? `- ${d.path || '/'}: ${show(d.before)}`
        : `~ ${d.path || '/'}: ${show(d.before)} → ${show(d.after)}`,
  );
}
