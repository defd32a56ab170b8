/**
 * Semantic versions (semver.org 2.0.0), strict: `MAJOR.MINOR.PATCH[-pre][+build]`, no leading `v`, no missing
 * parts, no leading zeros. Precedence follows §11: pre-release versions sort before the release, identifiers
 * compare numerically when both are numeric, numeric identifiers sort before alphanumeric ones, a shorter set of
 * identifiers sorts first when all else is equal, and build metadata is ignored.
 */

/** A parsed version. `pre` is empty for a release. */
export interface SemVer {
  major: number;
  minor: number;
  patch: number;
  pre: readonly (string | number)[];
}

const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/** Longest string considered: keeps the parse cheap whatever a context sends. */
const MAX_LENGTH = 256;

/** Parses a strict semantic version, or returns undefined. */
export function parseSemver(s: string): SemVer | undefined {
  const m = s.length > MAX_LENGTH ? null : SEMVER.exec(s);
  const [major, minor, patch] = (m ?? []).slice(1, 4).map(Number);
  if (m === null || ![major, minor, patch].every(Number.isSafeInteger)) return undefined;
  const pre = m[4]?.split('.').map((id) => (/^\d+$/.test(id) ? Number(id) : id)) ?? [];
  return { major: major!, minor: minor!, patch: patch!, pre };
}

/** Precedence comparison: negative, zero or positive like `Array.prototype.sort`'s comparator. */
export function compareSemver(a: SemVer, b: SemVer): number {
  const ap = a.pre;
  const bp = b.pre;
  const core = Math.sign(a.major - b.major) || Math.sign(a.minor - b.minor) || Math.sign(a.patch - b.patch);
  // A release outranks its pre-releases.
  if (core !== 0 || ap.length === 0 || bp.length === 0) return core || bp.length - ap.length;
  for (let i = 0; i < ap.length && i < bp.length; i++) {
    const x = ap[i]!;
    const y = bp[i]!;
    // Numeric identifiers compare as numbers and sort before alphanumeric ones.
    if (x !== y) return typeof x !== typeof y ? (typeof x === 'number' ? -1 : 1) : x < y ? -1 : 1;
  }
  return ap.length - bp.length;
}
