/**
 * `aviary`: the command line for on-call engineers and release scripts. Reads `AVIARY_URL` and `AVIARY_TOKEN`
 * (or `--url`, `--token`), prints readable tables (or `--json`), and exits with the codes in exit-codes.ts.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import {
  ApiError,
  UnreachableError,
  appLabel,
  createApiClient,
  deliveryFromReceipt,
  describeDiff,
  describeExposure,
  describeDelivery,
  followDelivery,
  formatTime,
  isComplete,
  sdkLabel,
  type ApiClient,
  type CanaryStatus,
  type ChangeRequest,
  type ChangeRequestStatus,
  type Delivery,
  type EnvironmentSummary,
  type Flag,
  type FlagStateResource,
  type KillAllRequest,
  type KillResult,
  type Schemas,
  type Serve,
  type SideSummary,
  type TokenKind,
} from '@aviary/api-client';
import { ExitCode, EXIT_CODE_HELP } from './exit-codes.js';
import { renderPairs, renderTable, safeText } from './table.js';

/** Raised for refused confirmations and bad combinations commander cannot see. */
class UsageError extends Error {}

interface GlobalOptions {
  url: string;
  token?: string;
  json?: boolean;
}

/** Where the program writes. */
const out = (s: string) => process.stdout.write(safeText(s.endsWith('\n') ? s : s + '\n'));
const err = (s: string) => process.stderr.write(safeText(s.endsWith('\n') ? s : s + '\n'));

/** The API client for a command; `extraTimeoutMs` for requests the server may hold (`?waitMs=`). */
function client(cmd: Command, extraTimeoutMs = 0): { api: ApiClient; g: GlobalOptions } {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  if (!g.token) throw new AuthMissing();
  const token = g.token;
  return { api: createApiClient({ baseUrl: g.url, token: () => token, timeoutMs: 10_000 + extraTimeoutMs }), g };
}

class AuthMissing extends Error {
  constructor() {
    super('no admin token: set AVIARY_TOKEN or pass --token');
  }
}

function print(g: GlobalOptions, json: unknown, text: () => string): void {
  out(g.json ? JSON.stringify(json, null, 2) : text());
}

/** A flag state in one word, the way an incident channel says it: KILLED only when a kill switch was thrown. */
function stateWord(s: Pick<EnvironmentSummary, 'enabled' | 'killedAt'> | undefined): string {
  if (s === undefined) return '-';
  if (s.enabled) return 'on';
  return s.killedAt !== null ? 'KILLED' : 'off';
}

/** `[env]` after checking that it exists (a typo is "not found", exit 4), or every environment. */
async function environments(api: ApiClient, only?: string): Promise<string[]> {
  if (only !== undefined) {
    await api.get('/api/v1/environments/{env}', { params: { path: { env: only } } });
    return [only];
  }
  return (await api.get('/api/v1/environments')).environments.map((e) => e.key);
}

/** A comma-separated (and repeatable) option as a list. */
function list(v: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

/** Milliseconds the server may hold a kill's answer for its receipt (it polls the rest). */
const serverWaitMs = (waitMs: number) => Math.min(waitMs, 10_000);

/**
 * Follows delivery of `version` until every connected SDK has applied it or `waitMs` (from `sentAt`) has passed:
 * starts from the receipt in the answer when there is one, then reads the SDK list.
 */
function awaitDelivery(
  api: ApiClient,
  environment: string,
  version: number,
  sentAt: number,
  waitMs: number,
  initial: Delivery | null,
): Promise<Delivery> {
  return followDelivery(api, { environment, version, changedAt: sentAt, initial, timeoutMs: Math.max(0, sentAt + waitMs - Date.now()) });
}

function deliveryLines(d: Delivery): string[] {
  return [`delivery: ${describeDelivery(d)}`, ...(d.pending.length ? [`not yet applied by: ${d.pending.join(', ')}`] : [])];
}

async function confirm(question: string, expected: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim() === expected;
  } finally {
    rl.close();
  }
}

function versionsText(versions: Record<string, number>): string {
  return (
    Object.entries(versions)
      .map(([env, v]) => `${env} ${v}`)
      .join(', ') || 'none'
  );
}

function deliveryExit(d: Delivery): number {
  return isComplete(d) ? ExitCode.OK : ExitCode.UNCONFIRMED;
}

/** Builds the program; `run` parses and maps every failure to an exit code. */
export function buildProgram(): Command {
  const program = new Command('aviary')
    .description('Aviary feature flags: kill switches, canaries and tokens from the command line.')
    .addOption(new Option('--url <url>', 'server base URL').env('AVIARY_URL').default('http://127.0.0.1:4242'))
    .addOption(new Option('--token <token>', 'admin token').env('AVIARY_TOKEN'))
    .option('--json', 'print JSON instead of tables (for scripts)')
    .addHelpText('after', EXIT_CODE_HELP)
    .showHelpAfterError()
    .exitOverride();

  program
    .command('serve')
    .description('start the server (same as `npm start`; AVIARY_* variables apply)')
    .option('--host <host>', 'listen address (AVIARY_HOST)')
    .option('--port <port>', 'listen port (AVIARY_PORT)')
    .option('--db <path>', 'SQLite database file (AVIARY_DB)')
    .action(async (o: { host?: string; port?: string; db?: string }) => {
      if (o.host) process.env.AVIARY_HOST = o.host;
      if (o.port) process.env.AVIARY_PORT = o.port;
      if (o.db) process.env.AVIARY_DB = o.db;
      // main.ts boots on import (reads the environment, migrates, listens, handles SIGTERM): the same path as npm start.
      const entry = '../main.js';
      await import(entry);
      return new Promise<void>(() => {}); // the server owns the process from here
    });

  // ---- backup / restore (the SQLite store, on this machine) ----
  const dbOption = () => new Option('--db <path>', 'SQLite database file (AVIARY_DB)').env('AVIARY_DB').default('./data/aviary.db');
  program
    .command('backup')
    .description('copy the database to <file>, consistently, while the server runs and writes (SQLite online backup)')
    .argument('<file>', 'where to write the copy (must not exist, unless --force)')
    .addOption(dbOption())
    .option('--force', 'replace <file> if it exists')
    .action(async (file: string, o: { db: string; force?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { backupDatabase } = await import('../storage/backup.js');
      const result = await backupDatabase(o.db, file, { overwrite: o.force === true });
      print(g, result, () => `backed up ${o.db} to ${result.file} (${result.bytes} bytes; versions ${versionsText(result.environments)})`);
    });
  program
    .command('restore')
    .description('replace the database with a backup (refused while a server uses the database; SDKs resync after)')
    .argument('<file>', 'a file written by `aviary backup`')
    .addOption(dbOption())
    .option('-y, --yes', 'do not ask for confirmation')
    .action(async (file: string, o: { db: string; yes?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (!o.yes && !(await confirm(`Replace ${o.db} with ${file}? Type "restore" to confirm: `, 'restore'))) {
        throw new UsageError('not confirmed: pass --yes, or type "restore" when asked (needs a terminal)');
      }
      const { restoreDatabase } = await import('../storage/backup.js');
      const result = restoreDatabase(file, o.db);
      print(
        g,
        result,
        () =>
          `restored ${result.file} from ${file} (versions ${versionsText(result.environments)}; the next boot moves them on so every SDK resyncs)`,
      );
    });

  program
    .command('migrate-store')
    .description('copy a stopped SQLite installation into an empty PostgreSQL database (one transaction, verified; see docs/operations.md)')
    .requiredOption('--from <file>', 'the SQLite database file (its server must be stopped)')
    .requiredOption('--to <url>', 'the PostgreSQL database, postgres://user:password@host:port/database (migrated here; must hold no Aviary data)')
    .option('--timeout <seconds>', 'how long the copy may take: it is one transaction', '300')
    .action(async (o: { from: string; to: string; timeout: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (!/^postgres(ql)?:\/\//.test(o.to)) throw new UsageError('--to must be a postgres:// URL (postgres://user:password@host:port/database)');
      const timeout = Number(o.timeout);
      if (!Number.isFinite(timeout) || timeout <= 0 || timeout > 86_400) {
        throw new UsageError(`--timeout must be a number of seconds from 1 to 86400, got ${JSON.stringify(o.timeout)}`);
      }
      const { migrateStore } = await import('../storage/migrate-store.js');
      const r = await migrateStore(o.from, o.to, { timeoutMs: timeout * 1000 });
      print(g, r, () =>
        [
          `migrated ${r.from} to ${r.to} in ${(r.ms / 1000).toFixed(2)} s (one transaction; row counts and versions checked on both sides)`,
          '',
          renderTable(
            ['TABLE', 'ROWS'],
            r.tables.map((t) => [t.table, String(t.rows)]),
          ),
          '',
          `versions: ${versionsText(r.environments)}`,
          `next audit id: ${r.nextAuditId}`,
          ...(r.skipped.length ? [`left behind (SQLite-only server_state): ${r.skipped.join(', ')}`] : []),
        ].join('\n'),
      );
    });

  const env = (c: Command) => c.addOption(new Option('-e, --env <environment>', 'environment').env('AVIARY_ENV').makeOptionMandatory());

  // ---- flags ----
  const flags = program.command('flags').description('list, inspect, kill and revive flags');
  flags
    .command('list')
    .description('flags with their state in each environment')
    .option('-s, --search <text>', 'only flags whose key, description or tags contain this')
    .option('-e, --env <environment>', 'only this environment')
    .option('--archived', 'include archived flags')
    .action(async (o: { search?: string; env?: string; archived?: boolean }, cmd: Command) => {
      const { api, g } = client(cmd);
      const envs = await environments(api, o.env);
      let all = (await api.get('/api/v1/flags', { params: { query: { archived: o.archived ? 'all' : 'false' } } })).flags;
      if (o.search) {
        const q = o.search.toLowerCase();
        all = all.filter((f) => [f.key, f.description, ...f.tags].some((x) => x.toLowerCase().includes(q)));
      }
      // The list embeds each flag's state per environment in brief; keep the environments asked for.
      const rows: Flag[] = all.map((f) => ({
        ...f,
        environments: Object.fromEntries(envs.flatMap((e) => (f.environments[e] ? [[e, f.environments[e]]] : []))),
      }));
      print(g, rows, () =>
        rows.length === 0
          ? 'no flags'
          : renderTable(
              ['KEY', 'KIND', ...envs.map((e) => e.toUpperCase()), 'DESCRIPTION'],
              rows.map((f) => [f.archived ? `${f.key} (archived)` : f.key, f.kind, ...envs.map((e) => stateWord(f.environments[e])), f.description]),
            ),
      );
    });

  flags
    .command('get <key>')
    .description("a flag's variants and its state in each environment")
    .option('-e, --env <environment>', 'only this environment')
    .action(async (key: string, o: { env?: string }, cmd: Command) => {
      const { api, g } = client(cmd);
      const flag = await api.get('/api/v1/flags/{key}', { params: { path: { key } } });
      const envs = await environments(api, o.env);
      const states: Record<string, FlagStateResource> = Object.fromEntries(
        await Promise.all(
          envs.map(async (e) => [e, await api.get('/api/v1/flags/{key}/environments/{env}', { params: { path: { key, env: e } } })] as const),
        ),
      );
      print(g, { ...flag, environments: states }, () => {
        const killed = envs.flatMap((e) => {
          const s = states[e];
          return s && !s.enabled && s.killedAt !== null
            ? [`${e}: killed at ${formatTime(s.killedAt)}${s.killReason ? ` (reason: ${s.killReason})` : ''}${s.panicked ? ', by kill-all' : ''}`]
            : [];
        });
        // Prerequisites (CONTRACT §12): a line per environment whose state requires other flags.
        const requires = envs.flatMap((e) => {
          const pre = states[e]?.prerequisites ?? [];
          return pre.length ? [`${e}: requires ${pre.map((p) => `${p.flag} (${p.variants.join(' or ')})`).join(', ')}`] : [];
        });
        const lines = [
          renderPairs([
            ['flag', flag.key],
            ['kind', flag.kind],
            ['description', flag.description || '-'],
            ['tags', flag.tags.length ? flag.tags.join(', ') : '-'],
            ...(flag.archived ? ([['archived', 'yes']] as Array<[string, string]>) : []),
          ]),
          '',
          renderTable(
            ['VARIANT', 'VALUE'],
            flag.variants.map((v) => [v.key, JSON.stringify(v.value)]),
          ),
          '',
          renderTable(
            ['ENVIRONMENT', 'STATE', 'OFF VARIANT', 'TARGETS', 'RULES', 'FALLTHROUGH', 'VERSION'],
            envs.map((e) => {
              const s = states[e]!;
              return [
                e,
                stateWord(s),
                s.offVariant,
                String(s.targets.length),
                String(s.rules.length),
                describeServe(s.fallthrough),
                String(s.version),
              ];
            }),
          ),
          ...(requires.length ? ['', ...requires] : []),
          ...(killed.length ? ['', ...killed] : []),
        ];
        return lines.join('\n');
      });
    });

  for (const [action, what] of [
    ['kill', 'turn a flag off (serve its off variant everywhere) and wait for the SDKs to confirm'],
    ['revive', 'undo a kill: the flag serves its targeting again'],
  ] as const) {
    env(
      flags
        .command(`${action} <key>`)
        .description(what)
        .option('-r, --reason <text>', 'why (recorded in the audit log)')
        .option('-w, --wait <seconds>', 'how long to wait for delivery receipts', '10'),
    ).action(async (key: string, o: { env: string; reason?: string; wait: string }, cmd: Command) => {
      await flip(cmd, action, key, o);
    });
  }

  async function flip(cmd: Command, action: 'kill' | 'revive', key: string, o: { env: string; reason?: string; wait: string }) {
    const waitMs = seconds(o.wait) * 1000;
    const { api, g } = client(cmd, serverWaitMs(waitMs));
    const sentAt = Date.now();
    // `waitMs` lets the server hold the answer until the SDKs acknowledge (at most 10 s here); we poll for the rest.
    const init = { params: { path: { key, env: o.env }, query: { waitMs: serverWaitMs(waitMs) } }, body: o.reason ? { reason: o.reason } : {} };
    const res: KillResult =
      action === 'kill'
        ? await api.post('/api/v1/flags/{key}/environments/{env}/kill', init)
        : await api.post('/api/v1/flags/{key}/environments/{env}/revive', init);
    const { delivery: receipt, ...state } = res;
    const delivery = await awaitDelivery(api, o.env, res.environmentVersion, sentAt, waitMs, receipt ? deliveryFromReceipt(receipt) : null);
    print(g, { flag: key, environment: o.env, action, changed: res.changed, state, receipt: delivery }, () =>
      [
        `${action === 'kill' ? 'killed' : 'revived'} ${key} in ${o.env}${o.reason ? ` (reason: ${o.reason})` : ''}${res.changed ? '' : ' (no change: it already was)'}: now ${
          state.enabled ? 'serving its targeting' : `serving "${state.offVariant}" to everyone`
        }`,
        ...deliveryLines(delivery),
      ].join('\n'),
    );
    process.exitCode = deliveryExit(delivery);
  }

  // ---- history (issue 14) ----
  env(
    flags
      .command('history <key>')
      .description("every version of a flag's state in an environment, newest first, with who, when and why")
      .option('-l, --limit <n>', 'versions per page (1-500)', '20')
      .option('--cursor <cursor>', 'the next page (printed after a full page)'),
  ).action(async (key: string, o: { env: string; limit: string; cursor?: string }, cmd: Command) => {
    const { api, g } = client(cmd);
    const limit = Number(o.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500)
      throw new UsageError(`--limit must be a whole number from 1 to 500, got ${JSON.stringify(o.limit)}`);
    const page = await api.get('/api/v1/flags/{key}/environments/{env}/history', {
      params: { path: { key, env: o.env }, query: { limit, ...(o.cursor !== undefined ? { cursor: o.cursor } : {}) } },
    });
    print(g, page, () =>
      [
        renderTable(
          ['VERSION', 'AT', 'ACTOR', 'ACTION', 'STATE', 'FALLTHROUGH', 'RULES', 'REASON'],
          page.entries.map((e) => [
            String(e.version),
            formatTime(e.at),
            e.actor.name,
            e.action,
            e.state.enabled ? 'on' : 'off',
            describeServe(e.state.fallthrough),
            String(e.state.rules.length),
            e.reason ?? '',
          ]),
        ),
        ...(page.nextCursor ? [`older versions: aviary flags history ${key} --env ${o.env} --cursor ${page.nextCursor}`] : []),
      ].join('\n'),
    );
  });

  env(
    flags
      .command('revert <key>')
      .description("write an earlier version's state as a new version (audited), and wait for the SDKs to confirm")
      .requiredOption('--version <n>', 'the version to go back to (see `aviary flags history`)')
      .option('-r, --reason <text>', 'why (recorded in the audit log and the history)')
      .option('-w, --wait <seconds>', 'how long to wait for delivery receipts', '10'),
  ).action(async (key: string, o: { env: string; version: string; reason?: string; wait: string }, cmd: Command) => {
    const version = Number(o.version);
    if (!Number.isInteger(version) || version < 1)
      throw new UsageError(`--version must be a version number (1 or more), got ${JSON.stringify(o.version)}`);
    const waitMs = seconds(o.wait) * 1000;
    const { api, g } = client(cmd);
    const sentAt = Date.now();
    const res = await api.post('/api/v1/flags/{key}/environments/{env}/revert', {
      params: { path: { key, env: o.env } },
      body: { version, ...(o.reason ? { reason: o.reason } : {}) },
    });
    const delivery = await awaitDelivery(api, o.env, res.environmentVersion, sentAt, waitMs, null);
    print(g, { flag: key, environment: o.env, action: 'revert', revertedTo: version, state: res, receipt: delivery }, () =>
      [
        `reverted ${key} in ${o.env} to version ${version} (now version ${res.version})${o.reason ? ` (reason: ${o.reason})` : ''}: now ${
          res.enabled ? `serving its targeting (fallthrough ${describeServe(res.fallthrough)})` : `serving "${res.offVariant}" to everyone`
        }`,
        ...deliveryLines(delivery),
      ].join('\n'),
    );
    process.exitCode = deliveryExit(delivery);
  });

  // ---- environments ----
  const envCmd = program.command('env').description('environment-wide actions');
  envCmd
    .command('list')
    .description('environments')
    .action(async (_o: unknown, cmd: Command) => {
      const { api, g } = client(cmd);
      const envs = (await api.get('/api/v1/environments')).environments;
      print(g, envs, () =>
        renderTable(
          ['KEY', 'NAME', 'VERSION', 'CREATED'],
          envs.map((e) => [e.key, e.name, String(e.version), formatTime(e.createdAt)]),
        ),
      );
    });
  envCmd
    .command('kill-all <environment>')
    .description('panic button: kill every flag of the environment (restore with revive-all)')
    .option('-r, --reason <text>', 'why (recorded in the audit log)')
    .option('--except <keys>', 'flags to leave alone (comma-separated, or repeat the option)', list)
    .addOption(new Option('--spare <keys>', 'same as --except').argParser(list))
    .option('-y, --yes', 'do not ask for confirmation')
    .option('-w, --wait <seconds>', 'how long to wait for delivery receipts', '10')
    .action(async (environment: string, o: { reason?: string; except?: string[]; spare?: string[]; yes?: boolean; wait: string }, cmd: Command) => {
      const waitMs = seconds(o.wait) * 1000;
      const { api, g } = client(cmd);
      if (!o.yes && !(await confirm(`This turns off EVERY flag in ${environment}. Type the environment name to confirm: `, environment))) {
        throw new UsageError(`not confirmed: pass --yes, or type "${environment}" when asked (needs a terminal)`);
      }
      const except = [...(o.except ?? []), ...(o.spare ?? [])];
      const body: KillAllRequest = { ...(o.reason ? { reason: o.reason } : {}), ...(except.length ? { except } : {}) };
      const sentAt = Date.now();
      const res = await api.post('/api/v1/environments/{env}/kill-all', { params: { path: { env: environment } }, body });
      const delivery = await awaitDelivery(api, environment, res.environmentVersion, sentAt, waitMs, null);
      print(g, { environment, result: res, receipt: delivery }, () =>
        [
          res.killed.length
            ? `panic: killed ${res.killed.length} flag(s) in ${environment}: ${res.killed.join(', ')}`
            : `panic: no enabled flag to kill in ${environment}`,
          ...(res.spared.length ? [`spared: ${res.spared.join(', ')}`] : []),
          `restore with \`aviary env revive-all ${environment}\``,
          ...deliveryLines(delivery),
        ].join('\n'),
      );
      process.exitCode = deliveryExit(delivery);
    });
  envCmd
    .command('revive-all <environment>')
    .description('undo the panic: every flag back to its state before kill-all')
    .option('-r, --reason <text>', 'why (recorded in the audit log)')
    .option('-w, --wait <seconds>', 'how long to wait for delivery receipts', '10')
    .action(async (environment: string, o: { reason?: string; wait: string }, cmd: Command) => {
      const waitMs = seconds(o.wait) * 1000;
      const { api, g } = client(cmd);
      const sentAt = Date.now();
      const res = await api.post('/api/v1/environments/{env}/revive-all', {
        params: { path: { env: environment } },
        body: o.reason ? { reason: o.reason } : {},
      });
      const delivery = await awaitDelivery(api, environment, res.environmentVersion, sentAt, waitMs, null);
      print(g, { environment, result: res, receipt: delivery }, () =>
        [
          res.revived.length
            ? `restored ${res.revived.length} flag(s) in ${environment} to their state before the panic: ${res.revived.join(', ')}`
            : `nothing to restore in ${environment}: no flag is held by a panic`,
          ...deliveryLines(delivery),
        ].join('\n'),
      );
      process.exitCode = deliveryExit(delivery);
    });
  envCmd
    .command('sdks <environment>')
    .description('connected SDKs and the version each has applied')
    .action(async (environment: string, _o: unknown, cmd: Command) => {
      const { api, g } = client(cmd);
      const body = await api.get('/api/v1/environments/{env}/sdks', { params: { path: { env: environment } } });
      print(g, body, () =>
        body.items.length === 0
          ? `no SDKs connected to ${environment} (version ${body.version})`
          : [
              `${body.items.filter((s) => s.appliedVersion !== null && s.appliedVersion >= body.version).length}/${body.items.length} SDKs on the latest version (${body.version}) of ${environment}`,
              '',
              renderTable(
                ['ID', 'APP', 'SDK', 'CONNECTED', 'APPLIED VERSION', 'APPLIED AT'],
                body.items.map((s) => [
                  s.id,
                  appLabel(s) || '-',
                  sdkLabel(s),
                  formatTime(s.connectedAt),
                  s.appliedVersion === null ? '-' : String(s.appliedVersion),
                  formatTime(s.appliedAt),
                ]),
              ),
            ].join('\n'),
      );
    });

  // ---- canary ----
  const canary = program.command('canary').description('inspect and steer a canary rollout');
  env(canary.command('status <flag>').description("the canary's stage, state and the guard's latest comparison")).action(
    async (flag: string, o: { env: string }, cmd: Command) => {
      const { api, g } = client(cmd);
      const c = await api.get('/api/v1/flags/{key}/environments/{env}/canary', { params: { path: { key: flag, env: o.env } } });
      print(g, c, () => describeCanary(flag, o.env, c));
    },
  );
  type CanaryInit = { params: { path: { key: string; env: string } }; body: { reason?: string } };
  const canaryActions: Record<
    'advance' | 'rollback' | 'promote' | 'pause' | 'resume',
    [string, (api: ApiClient, init: CanaryInit) => Promise<CanaryStatus>]
  > = {
    advance: ['move to the next stage now', (api, init) => api.post('/api/v1/flags/{key}/environments/{env}/canary/advance', init)],
    rollback: [
      'send all traffic back to the control variant',
      (api, init) => api.post('/api/v1/flags/{key}/environments/{env}/canary/rollback', init),
    ],
    promote: [
      'serve the canary variant to everyone and finish',
      (api, init) => api.post('/api/v1/flags/{key}/environments/{env}/canary/promote', init),
    ],
    pause: ['hold the current stage (the guard still watches)', (api, init) => api.post('/api/v1/flags/{key}/environments/{env}/canary/pause', init)],
    resume: ['continue a paused canary', (api, init) => api.post('/api/v1/flags/{key}/environments/{env}/canary/resume', init)],
  };
  for (const [action, [what, send]] of Object.entries(canaryActions)) {
    env(canary.command(`${action} <flag>`).description(what).option('-r, --reason <text>', 'why (recorded in the audit log)')).action(
      async (flag: string, o: { env: string; reason?: string }, cmd: Command) => {
        const { api, g } = client(cmd);
        const c = await send(api, { params: { path: { key: flag, env: o.env } }, body: o.reason ? { reason: o.reason } : {} });
        print(g, c, () => describeCanary(flag, o.env, c));
      },
    );
  }

  // ---- change requests ----
  const requests = program.command('requests').description('change requests of environments that require approval');
  const statuses = ['pending', 'approved', 'rejected', 'applied'] as const satisfies readonly ChangeRequestStatus[];
  requests
    .command('list')
    .description('change requests, newest first, with what each would change in the current state')
    .option('-e, --env <environment>', 'only this environment')
    .addOption(new Option('-s, --status <status>', statuses.join(', ')).choices(statuses))
    .option('-f, --flag <key>', 'only this flag')
    .action(async (o: { env?: string; status?: ChangeRequestStatus; flag?: string }, cmd: Command) => {
      const { api, g } = client(cmd);
      const query = { ...(o.env ? { environment: o.env } : {}), ...(o.status ? { status: o.status } : {}), ...(o.flag ? { flag: o.flag } : {}) };
      const list = (await api.get('/api/v1/change-requests', { params: { query } })).changeRequests;
      print(g, list, () =>
        list.length === 0
          ? 'no change requests'
          : renderTable(
              ['ID', 'STATUS', 'FLAG', 'ENVIRONMENT', 'BASE', 'NOW', 'AUTHOR', 'REVIEWER', 'CREATED', 'CHANGES'],
              list.map((r) => [
                r.id,
                r.status,
                r.flag,
                r.environment,
                `v${r.baseVersion}`,
                r.currentVersion === null ? '-' : `v${r.currentVersion}`,
                r.author.name,
                r.reviewer?.name ?? '-',
                formatTime(r.createdAt),
                r.diff === null ? '-' : String(r.diff.length),
              ]),
            ),
      );
    });
  requests
    .command('show <id>')
    .description('one change request and its diff against the current state')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const { api, g } = client(cmd);
      const r = await api.get('/api/v1/change-requests/{id}', { params: { path: { id } } });
      print(g, r, () => describeRequest(r));
    });
  const reviews = {
    approve: 'approve a pending request (another actor than its author)',
    reject: 'reject (or, as its author, withdraw) an open request',
  } as const;
  for (const [action, what] of Object.entries(reviews) as Array<[keyof typeof reviews, string]>) {
    requests
      .command(`${action} <id>`)
      .description(what)
      .option('-r, --reason <text>', 'why (recorded in the audit log)')
      .action(async (id: string, o: { reason?: string }, cmd: Command) => {
        const { api, g } = client(cmd);
        const init = { params: { path: { id } }, body: o.reason ? { reason: o.reason } : {} };
        const r =
          action === 'approve'
            ? await api.post('/api/v1/change-requests/{id}/approve', init)
            : await api.post('/api/v1/change-requests/{id}/reject', init);
        print(g, r, () => describeRequest(r));
      });
  }
  requests
    .command('apply <id>')
    .description("write an approved request's state (refused if the flag's state moved past its base version)")
    .option('-r, --reason <text>', 'why (recorded in the audit log)')
    .action(async (id: string, o: { reason?: string }, cmd: Command) => {
      const { api, g } = client(cmd);
      try {
        const r = await api.post('/api/v1/change-requests/{id}/apply', { params: { path: { id } }, body: o.reason ? { reason: o.reason } : {} });
        print(
          g,
          r,
          () =>
            `applied: ${r.changeRequest.flag} in ${r.changeRequest.environment} is now state version ${r.state.version} (environment version ${r.state.environmentVersion})`,
        );
      } catch (e) {
        // The flag moved on: say what changed since, so the author can make a new request against it.
        const diff = e instanceof ApiError && e.status === 409 ? (e.problem as { diff?: ChangeRequest['diff'] }).diff : undefined;
        if (diff) err(['the current state differs from the request at:', ...describeDiff(diff).map((l) => `  ${l}`)].join('\n'));
        throw e;
      }
    });
  // ---- scheduled changes ----
  const schedules = program.command('schedules').description('kills, revives and whole states scheduled for a time');
  const flagOpt = (c: Command) => c.requiredOption('-f, --flag <key>', 'the flag');
  env(flagOpt(schedules.command('list').description("a flag's scheduled changes in an environment, soonest first")))
    .addOption(new Option('--status <status>', 'only schedules in this status').choices(['pending', 'done', 'failed', 'cancelled'] as const))
    .action(async (o: { flag: string; env: string; status?: Schedule['status'] }, cmd: Command) => {
      const { api, g } = client(cmd);
      const list = (
        await api.get('/api/v1/flags/{key}/environments/{env}/schedules', {
          params: { path: { key: o.flag, env: o.env }, query: o.status ? { status: o.status } : {} },
        })
      ).schedules;
      print(g, list, () =>
        list.length === 0
          ? `no scheduled changes of ${o.flag} in ${o.env}`
          : renderTable(
              ['ID', 'AT', 'ACTION', 'STATUS', 'RAN AT', 'BY', 'REASON / ERROR'],
              list.map((s) => [s.id, formatTime(s.at), s.action, s.status, formatTime(s.ranAt), s.author.name, s.error ?? s.reason ?? '']),
            ),
      );
    });
  env(
    schedules
      .command('create <key>')
      .description('schedule a kill, a revive or a whole new state (from a JSON file) of a flag at a time')
      .requiredOption('--at <time>', 'when: an RFC 3339 time (2026-12-06T09:00:00Z), epoch milliseconds, or +30s / +10m / +2h from now')
      .addOption(new Option('--action <action>', 'kill, revive or state').choices(['kill', 'revive', 'state'] as const).makeOptionMandatory())
      .option('--state-file <file>', 'the flag state to write, as JSON (for --action state; - reads stdin)')
      .option('-r, --reason <text>', 'why (recorded in the audit log)'),
  ).action(async (key: string, o: { env: string; at: string; action: Schedule['action']; stateFile?: string; reason?: string }, cmd: Command) => {
    if (o.action === 'state' && !o.stateFile) throw new UsageError('--action state needs --state-file <file>');
    if (o.action !== 'state' && o.stateFile) throw new UsageError('--state-file is only for --action state');
    const at = parseAt(o.at);
    const state = o.stateFile ? readJsonFile(o.stateFile) : undefined;
    const { api, g } = client(cmd);
    const s = await api.post('/api/v1/flags/{key}/environments/{env}/schedules', {
      params: { path: { key, env: o.env } },
      body: {
        at,
        action: o.action,
        ...(state !== undefined ? { state: state as Schemas['FlagStateInput'] } : {}),
        ...(o.reason ? { reason: o.reason } : {}),
      },
    });
    print(
      g,
      s,
      () =>
        `scheduled ${s.action} of ${key} in ${o.env} at ${formatTime(s.at)} (id ${s.id}; cancel with: aviary schedules cancel ${s.id} --flag ${key} --env ${o.env})`,
    );
  });
  env(flagOpt(schedules.command('get <id>').description('one scheduled change'))).action(
    async (id: string, o: { flag: string; env: string }, cmd: Command) => {
      const { api, g } = client(cmd);
      const s = await api.get('/api/v1/flags/{key}/environments/{env}/schedules/{id}', { params: { path: { key: o.flag, env: o.env, id } } });
      print(g, s, () => describeSchedule(s));
    },
  );
  env(flagOpt(schedules.command('cancel <id>').description('cancel a pending scheduled change'))).action(
    async (id: string, o: { flag: string; env: string }, cmd: Command) => {
      const { api, g } = client(cmd);
      const s = await api.del('/api/v1/flags/{key}/environments/{env}/schedules/{id}', { params: { path: { key: o.flag, env: o.env, id } } });
      print(g, s, () => `cancelled the ${s.action} of ${s.flag} in ${s.environment} due at ${formatTime(s.at)} (id ${s.id})`);
    },
  );

  // ---- triggers ----
  const triggers = program.command('triggers').description('secret URLs that kill or revive a flag when an alert calls them');
  env(flagOpt(triggers.command('list').description("a flag's triggers in an environment (never their URLs)"))).action(
    async (o: { flag: string; env: string }, cmd: Command) => {
      const { api, g } = client(cmd);
      const list = (await api.get('/api/v1/flags/{key}/environments/{env}/triggers', { params: { path: { key: o.flag, env: o.env } } })).triggers;
      print(g, list, () =>
        list.length === 0
          ? `no triggers of ${o.flag} in ${o.env}`
          : renderTable(
              ['ID', 'NAME', 'ACTION', 'LAST FIRED', 'FIRED', 'CREATED', 'BY'],
              list.map((t) => [t.id, t.name, t.action, formatTime(t.lastFiredAt), String(t.fired), formatTime(t.createdAt), t.author.name]),
            ),
      );
    },
  );
  env(
    triggers
      .command('create <key>')
      .description('create a trigger; prints its URL once (point Alertmanager, Grafana or Datadog at it: docs/integrations.md)')
      .addOption(new Option('--action <action>', 'kill or revive').choices(['kill', 'revive'] as const).makeOptionMandatory())
      .requiredOption('-n, --name <name>', 'what fires it; the audit log names the trigger by it'),
  ).action(async (key: string, o: { env: string; action: 'kill' | 'revive'; name: string }, cmd: Command) => {
    const { api, g } = client(cmd);
    const t = await api.post('/api/v1/flags/{key}/environments/{env}/triggers', {
      params: { path: { key, env: o.env } },
      body: { action: o.action, name: o.name },
    });
    print(g, t, () => `${t.url}\n(${t.action}s ${key} in ${o.env}; shown only now, keep it secret; id ${t.id})`);
  });
  env(flagOpt(triggers.command('delete <id>').description('delete (revoke) a trigger: its URL stops working'))).action(
    async (id: string, o: { flag: string; env: string }, cmd: Command) => {
      const { api, g } = client(cmd);
      const t = await api.del('/api/v1/flags/{key}/environments/{env}/triggers/{id}', { params: { path: { key: o.flag, env: o.env, id } } });
      print(g, t, () => `deleted the trigger ${t.name} (${t.action} ${t.flag} in ${t.environment}); its URL answers 404 from now on`);
    },
  );

  // ---- tokens ----
  const tokens = program.command('tokens').description('admin tokens and SDK keys');
  tokens
    .command('list')
    .description('tokens (never their secrets)')
    .action(async (_o: unknown, cmd: Command) => {
      const { api, g } = client(cmd);
      const list = (await api.get('/api/v1/tokens')).tokens;
      print(g, list, () =>
        renderTable(
          ['ID', 'KIND', 'ROLE', 'ENVIRONMENT', 'NAME', 'PREFIX', 'CREATED', 'LAST USED', 'EXPIRES', 'REVOKED'],
          list.map((t) => [
            t.id,
            t.kind,
            t.role ?? '-',
            t.environment ?? t.environments?.join(',') ?? '-',
            t.name,
            t.prefix,
            formatTime(t.createdAt),
            formatTime(t.lastUsedAt),
            formatTime(t.expiresAt),
            formatTime(t.revokedAt),
          ]),
        ),
      );
    });
  const kinds = ['admin', 'sdk'] as const satisfies readonly TokenKind[];
  tokens
    .command('create')
    .description('create a token; its secret is printed once')
    .addOption(new Option('-k, --kind <kind>', kinds.join(' or ')).choices(kinds).makeOptionMandatory())
    .requiredOption('-n, --name <name>', 'who or what uses it')
    .option('-e, --env <environment>', 'environment (sdk keys)')
    // ---- roles and tokens (issue 17) ----
    .addOption(new Option('--role <role>', 'admin tokens: what they may do (default admin)').choices(ROLE_NAMES))
    .option('--environments <list>', 'editor/oncall tokens: the environments they may change, comma-separated (default all)')
    .option('--expires <when>', 'when it stops working: RFC 3339, epoch ms, or +<n>s|m|h|d from now (default never)')
    .action(
      async (o: { kind: (typeof kinds)[number]; name: string; env?: string; role?: Role; environments?: string; expires?: string }, cmd: Command) => {
        if (o.kind === 'sdk' && !o.env) throw new UsageError('an sdk key reads one environment: pass --env');
        const { api, g } = client(cmd);
        const environments = o.environments
          ?.split(',')
          .map((e) => e.trim())
          .filter((e) => e !== '');
        const body = {
          kind: o.kind,
          name: o.name,
          ...(o.env ? { environment: o.env } : {}),
          ...(o.role ? { role: o.role } : {}),
          ...(environments ? { environments } : {}),
          ...(o.expires ? { expiresAt: expiryTime(o.expires) } : {}),
        };
        const t = await api.post('/api/v1/tokens', { body });
        print(g, t, () => describeNewToken(t));
      },
    );
  tokens
    .command('rotate <id>')
    .description('a new secret for a token (printed once); the old one keeps working through the overlap, then expires')
    .option('--overlap <seconds>', 'how long the old secret keeps working (default 3600; 0 ends it now)')
    .option('--expires <when>', 'when the new token stops working: RFC 3339, epoch ms, or +<n>s|m|h|d (default never)')
    .action(async (id: string, o: { overlap?: string; expires?: string }, cmd: Command) => {
      let overlapSeconds: number | undefined;
      if (o.overlap !== undefined) {
        overlapSeconds = Number(o.overlap);
        if (!/^\d+$/.test(o.overlap.trim())) throw new UsageError('--overlap: a whole number of seconds');
      }
      const { api, g } = client(cmd);
      const t = await api.post('/api/v1/tokens/{id}/rotate', {
        params: { path: { id } },
        body: { ...(overlapSeconds !== undefined ? { overlapSeconds } : {}), ...(o.expires ? { expiresAt: expiryTime(o.expires) } : {}) },
      });
      const old = await api.get('/api/v1/tokens/{id}', { params: { path: { id } } });
      print(g, t, () => `${describeNewToken(t)}\nThe old secret (${old.prefix}…) works until ${formatTime(old.expiresAt)}.`);
    });
  // ---- end of roles and tokens ----
  tokens
    .command('revoke <id>')
    .description('revoke a token (its streams close, its requests fail)')
    .option('-r, --reason <text>', 'why (recorded in the audit log)')
    .action(async (id: string, o: { reason?: string }, cmd: Command) => {
      const { api, g } = client(cmd);
      const t = await api.del('/api/v1/tokens/{id}', { params: { path: { id } }, body: o.reason ? { reason: o.reason } : {} });
      print(g, t, () => `revoked ${t.kind} token ${t.id} (${t.name}) at ${formatTime(t.revokedAt)}`);
    });

  return program;
}

type Schedule = Schemas['Schedule'];

// ---- roles and tokens (issue 17) ----
type Role = Schemas['Role'];
const ROLE_NAMES = ['admin', 'editor', 'oncall', 'viewer'] as const satisfies readonly Role[];

/** `--expires`: like `--at`, sent as RFC 3339. */
function expiryTime(v: string): string {
  const at = parseAt(v);
  const ms = typeof at === 'number' ? at : Date.parse(at);
  if (!Number.isFinite(ms)) throw new UsageError(`--expires: "${v}" is not RFC 3339, epoch milliseconds or +<n>s|m|h|d`);
  return new Date(ms).toISOString();
}

/** A new token with its secret (create, rotate). */
function describeNewToken(t: Schemas['TokenCreated']): string {
  return [
    renderPairs([
      ['id', t.id],
      ['kind', t.kind],
      ...(t.environment !== null ? ([['environment', t.environment]] as Array<[string, string]>) : []),
      ...(t.role !== null ? ([['role', t.role]] as Array<[string, string]>) : []),
      ...(t.environments !== null ? ([['environments', t.environments.join(',')]] as Array<[string, string]>) : []),
      ...(t.expiresAt !== null ? ([['expires', formatTime(t.expiresAt)]] as Array<[string, string]>) : []),
      ['name', t.name],
      ['token', t.token],
    ]),
    '',
    'The token is shown only now: store it in your secret manager.',
  ].join('\n');
}
// ---- end of roles and tokens ----

/** `--at`: RFC 3339 (sent as is: the server parses it), epoch milliseconds, or `+<n>s|m|h|d` from now. */
function parseAt(v: string): string | number {
  const rel = /^\+(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(v.trim());
  if (rel) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(Date.now() + Number(rel[1]) * unit).toISOString();
  }
  if (/^\d{1,15}$/.test(v.trim())) return Number(v.trim());
  return v.trim();
}

function readJsonFile(file: string): unknown {
  const text = readFileSync(file === '-' ? 0 : file, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new UsageError(`${file}: not JSON (${(e as Error).message})`);
  }
}

function describeSchedule(s: Schedule): string {
  return renderPairs([
    ['id', s.id],
    ['flag', s.flag],
    ['environment', s.environment],
    ['at', formatTime(s.at)],
    ['action', s.action],
    ['status', s.status],
    ['ran at', formatTime(s.ranAt)],
    ['by', s.author.name],
    ['reason', s.reason ?? '-'],
    ...(s.error ? ([['error', s.error]] as Array<[string, string]>) : []),
    ...(s.state ? ([['state', JSON.stringify(s.state)]] as Array<[string, string]>) : []),
  ]);
}

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 600) throw new UsageError(`--wait must be a number of seconds from 0 to 600, got ${JSON.stringify(v)}`);
  return n;
}

function describeServe(s: Serve): string {
  if ('variant' in s) return s.variant;
  return s.rollout.weights.map((w) => `${w.variant} ${w.percent}%`).join(' / ');
}

function describeCanary(flag: string, env: string, c: CanaryStatus): string {
  const timeline = c.stages
    .map((s, i) => {
      const label = 'segment' in s ? `[${s.segment}]` : `${s.percent}%`;
      return i === c.stage ? `>${label}<` : label;
    })
    .join(' → ');
  // While active, `comparison` is live; afterwards `lastDecision` keeps the guard's final word.
  const cmp = c.comparison;
  const decision = cmp ?? c.lastDecision;
  const lines = [
    renderPairs([
      ['canary', `${flag} in ${env}: ${c.canary} against ${c.control}`],
      ['state', c.state],
      ['stage', `${c.stage + 1} of ${c.stages.length} (${c.percent}% of traffic${c.cohorts.length ? `, cohorts: ${c.cohorts.join(', ')}` : ''})`],
      ['timeline', timeline || '-'],
      ['started', formatTime(c.startedAt)],
      ...(c.holdRemainingSeconds !== null
        ? ([['hold', `${Math.ceil(c.holdRemainingSeconds)} s left in this stage`]] as Array<[string, string]>)
        : []),
      ['exposure', describeExposure(c)],
      ['decision', decision ? `${decision.decision} (at ${formatTime(decision.at)})` : '-'],
      ['why', decision?.why ?? '-'],
    ]),
  ];
  if (cmp) {
    const side = (name: string, s: SideSummary) => [
      name,
      s.variant,
      String(s.evaluations),
      String(s.outcomes),
      fmtRate(s.errorRate),
      fmtMs(s.latencyMs?.p50 ?? null),
      fmtMs(s.latencyMs?.p95 ?? null),
    ];
    lines.push(
      '',
      renderTable(
        ['SIDE', 'VARIANT', 'EVALUATIONS', 'OUTCOMES', 'ERROR RATE', 'P50 MS', 'P95 MS'],
        [side('control', cmp.control), side('canary', cmp.canary)],
      ),
    );
  }
  return lines.join('\n');
}

function describeRequest(r: ChangeRequest): string {
  const lines = [
    renderPairs([
      ['id', r.id],
      ['status', r.status],
      ['flag', r.flag],
      ['environment', r.environment],
      ['base version', `v${r.baseVersion}`],
      ['current version', r.currentVersion === null ? '-' : `v${r.currentVersion}`],
      ['author', r.author.name],
      ['reason', r.reason ?? '-'],
      ['reviewer', r.reviewer ? `${r.reviewer.name}${r.reviewReason ? ` (${r.reviewReason})` : ''}` : '-'],
      ['created', formatTime(r.createdAt)],
    ]),
  ];
  if (r.diff !== null) {
    lines.push('', r.diff.length ? 'changes against the current state:' : 'no change against the current state');
    lines.push(...describeDiff(r.diff).map((l) => `  ${l}`));
  }
  return lines.join('\n');
}

function fmtRate(v: number | null): string {
  return v === null ? '-' : `${(v * 100).toFixed(2)}%`;
}

function fmtMs(v: number | null): string {
  return v === null ? '-' : String(Math.round(v * 10) / 10);
}

/** Runs the CLI with `argv` (as process.argv) and returns the exit code; never throws. */
export async function run(argv: string[]): Promise<number> {
  // `aviary flags list | head` closes the pipe early: that is the reader being done, not an error.
  process.stdout.once('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(ExitCode.OK);
    throw e;
  });
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version are successes; everything else commander rejects is a usage error (it already printed why).
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version' ? ExitCode.OK : ExitCode.USAGE;
    }
    if (e instanceof UsageError) {
      err(`error: ${e.message}`);
      return ExitCode.USAGE;
    }
    if (e instanceof AuthMissing) {
      err(`error: ${e.message}`);
      return ExitCode.AUTH;
    }
    if (e instanceof UnreachableError) {
      err(`error: ${e.message}`);
      return ExitCode.UNREACHABLE;
    }
    if (e instanceof ApiError) {
      err(`error: ${e.message}`);
      if (e.status === 401 || e.status === 403) return ExitCode.AUTH;
      if (e.status === 404) return ExitCode.NOT_FOUND;
      return ExitCode.API_ERROR;
    }
    err(`error: ${e instanceof Error ? e.message : String(e)}`);
    return ExitCode.API_ERROR;
  }
}

// Run when executed directly (`tsx server/cli/main.ts`); the bin shim imports this module and calls `run` itself.
function invokedDirectly(): boolean {
  try {
    return process.argv[1] !== undefined && pathToFileURL(realpathSync(process.argv[1])).href === import.meta.url;
  } catch {
    return false;
  }
}
if (invokedDirectly()) {
  const code = await run(process.argv);
  process.exitCode = code;
}
