/**
 * Exit codes of the `aviary` CLI. Scripts (and incident runbooks) branch on them, so they never change meaning.
 * Documented in README.md ("Quick tour") and in `aviary --help`.
 */
export const ExitCode = {
  /** The command did what it was asked. */
  OK: 0,
  /** The server answered with an error other than the ones below (validation, conflict, 5xx, ...). */
  API_ERROR: 1,
  /** Bad command line: unknown command or option, missing argument, refused confirmation. */
  USAGE: 2,
  /** No token, or the server rejected it (401/403). */
  AUTH: 3,
  /** The flag, environment, canary or token does not exist (404). */
  NOT_FOUND: 4,
  /** Nothing answered at the URL (connection refused, DNS failure, timeout). */
  UNREACHABLE: 5,
  /** A kill or panic was applied, but not every connected SDK confirmed it within `--wait`. */
  UNCONFIRMED: 6,
  /** `aviary plan`: applying the file would change something (0 means nothing would). */
  CHANGES: 7,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Help text appended to `aviary --help`. */
export const EXIT_CODE_HELP = `
Exit codes:
  0  ok
  1  API error (validation, conflict, server error)
  2  usage error (unknown command or option, missing argument, confirmation refused)
  3  authentication: no token, or the token was rejected (401/403)
  4  not found (flag, environment, canary, token)
  5  server unreachable (connection refused, timeout)
  6  kill/panic applied, but not every connected SDK confirmed it within --wait
  7  plan: applying the file would change something`;
