/** The field-level changes of a state (history diffs, promote previews): one row per changed member, before and after. */
import type { Schemas } from '@aviary/api-client';

type StateChange = Schemas['StateChange'];

export function DiffTable({
  changes,
  before,
  after,
  missing,
  ...label
}: {
  changes: StateChange[];
  /** The column headers of the two sides. */
  before: string;
  after: string;
  /** What a side without the member shows. */
  missing: string;
  /** The table's accessible name: a label, or the id of the heading that labels it. */
  'aria-label'?: string;
  'aria-labelledby'?: string;
}) {
  const json = (v: unknown) => (v === undefined ? missing : JSON.stringify(v));
  return (
    <table {...label} class="diff">
      <thead>
        <tr>
          <th scope="col">Member</th>
          <th scope="col">{before}</th>
          <th scope="col">{after}</th>
        </tr>
      </thead>
      <tbody>
        {changes.map((c) => (
          <tr key={c.path} class={c.op}>
            <th scope="row">
              <code>{c.path}</code>
            </th>
            <td>
              <code>{json(c.before)}</code>
            </td>
            <td>
              <code>{json(c.after)}</code>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
