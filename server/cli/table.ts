/** Plain-text tables for the CLI: aligned columns, no colour codes (output is often piped or pasted into tickets). */

// C0 controls but newline, DEL, C1 controls, and the bidirectional overrides that reorder what a terminal shows.
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters it escapes
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text for a terminal: control characters shown as `\u001b`-style escapes. What the CLI prints comes partly from
 * SDKs (an SDK id, an app name), and an SDK key is public: raw, such text could move the cursor, rewrite earlier
 * lines, set the window title or hide itself (a terminal escape injection).
 */
export function safeText(s: string): string {
  return s.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Renders rows under a header, each column as wide as its widest cell. */
export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Key/value pairs, one per line, keys aligned. */
export function renderPairs(pairs: Array<[string, string]>): string {
  const w = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${(k + ':').padEnd(w + 1)}  ${v}`).join('\n');
}
