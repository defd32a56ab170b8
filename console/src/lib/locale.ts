/**
 * Intl and a POSIX locale. Under `LANG=C` or `LANG=en_US` some browsers (headless Chromium among them) report
 * `navigator.language` as `en-US@posix`, which `Intl` refuses with "Invalid language tag", and libraries that format
 * with `navigator.language` (uPlot does, when it loads) throw. Before loading one, the console replaces an unusable
 * tag with the nearest usable one: `en-US@posix` → `en-US`, and anything else unusable → `en-US`.
 */

/** `tag` without a POSIX modifier or charset, with `-` separators: `en_US.UTF-8@posix` → `en-US`. */
export function bcp47(tag: string): string {
  return tag.replace(/[.@].*$/, '').replaceAll('_', '-');
}

function usable(tag: string): boolean {
  try {
    new Intl.NumberFormat(tag);
    return true;
  } catch {
    return false;
  }
}

/** Makes `navigator.language` a tag `Intl` accepts (changes nothing when it already is one). */
export function ensureUsableLanguage(): void {
  if (typeof navigator === 'undefined' || usable(navigator.language)) return;
  const cleaned = bcp47(navigator.language);
  const tag = usable(cleaned) ? cleaned : 'en-US';
  // An own property on this page's navigator object shadows the prototype's getter; nothing else is touched.
  Object.defineProperty(navigator, 'language', { configurable: true, get: () => tag });
}
