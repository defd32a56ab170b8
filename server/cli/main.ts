/**
 * `aviary`: the command line for on-call engineers and release scripts. Reads `AVIARY_URL` and `AVIARY_TOKEN`
 * (or `--url`, `--token`), prints readable tables (or `--json`), and exits with the codes in exit-codes.ts.
 */
import { realpathSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { ApiError, UnreachableError, createApiClient, seg, type ApiClient } from './api-client.js';
import { ExitCode, EXIT_CODE_HELP } from './exit-codes.js';
import {
  describeReceipt,
  isComplete,
  listOf,
  receiptFromResponse,
  receiptFromSdks,
  toConnectedSdk,
  type DeliveryReceipt,
} from './delivery-receipt.js';
import { renderPairs, renderTable } from './table.js';

/** Raised for refused confirmations and bad combinations commander cannot see. */
class UsageError extends Error {}

interface GlobalOptions {
  url: string;
  token?: string;
  json?: boolean;
}

type Json = Record<string, unknown>;

const asObj = (v: unknown): Json => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {});
const str = (v: unknown): string => (v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v));

/** Where the program writes; injectable so tests could capture it, and so `serve` can keep stdout for the server. */
const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : s + '\n');
const err = (s: string) => process.stderr.write(s.endsWith('\n') ? s : s + '\n');

function client(cmd: Command): { api: ApiClient; g: GlobalOptions } {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  if (!g.token) throw new AuthMissing();
  const token = g.token;
  return { api: createApiClient({ baseUrl: g.url, token: () => token }), g };
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
function stateWord(s: Json): string {
  if (Object.keys(s).length === 0) return '-';
  if (s.enabled !== false) return 'on';
  return s.killedAt !== null && s.killedAt !== undefined ? 'KILLED' : 'off';
}

function envKey(e: unknown): string {
  const o = asObj(e);
  return str(o.key ?? o.name ?? e);
}

async function environments(api: ApiClient): Promise<string[]> {
  return listOf(await api.get('/environments'), 'environments').map(envKey);
}

/** The per-environment states of a flag: embedded in the flag when the server includes them, fetched otherwise. */
async function statesOf(api: ApiClient, flag: Json, envs: string[], full = false): Promise<Record<string, Json>> {
  // The flag list embeds a summary per environment (enabled, version); `full` fetches the whole state.
  const embedded = full ? {} : asObj(flag.environments ?? flag.states);
  const states: Record<string, Json> = {};
  await Promise.all(
    envs.map(async (env) => {
      if (embedded[env] !== undefined) {
        states[env] = asObj(embedded[env]);
        return;
      }
      try {
        states[env] = asObj(await api.get(`/flags/${seg(str(flag.key))}/environments/${seg(env)}`));
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) states[env] = {};
        else throw e;
      }
    }),
  );
  return states;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until every connected SDK in `env` has applied the change, or `waitMs` passes. Starts from the receipt in
 * the response when there is one, then polls the SDK list (the route that answers "is it off everywhere?").
 */
async function awaitDelivery(api: ApiClient, env: string, response: unknown, changedAt: number, waitMs: number): Promise<DeliveryReceipt | null> {
  let receipt = receiptFromResponse(response);
  const version = receipt?.version ?? num(asObj(response).environmentVersion) ?? (await currentEnvVersion(api, env));
  if (version === null) return receipt;
  if (receipt && isComplete(receipt)) return receipt;
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      receipt = receiptFromSdks(await api.get(`/environments/${seg(env)}/sdks`), version, changedAt);
    } catch (e) {
      // A server without the SDK list still killed the flag; report what the response said.
      if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return receipt;
      throw e;
    }
    if (isComplete(receipt) || Date.now() >= deadline) return receipt;
    await sleep(100);
  }
}

async function currentEnvVersion(api: ApiClient, env: string): Promise<number | null> {
  try {
    const e = listOf(await api.get('/environments'), 'environments').map(asObj).find((x) => envKey(x) === env);
    return typeof e?.version === 'number' ? e.version : null;
  } catch {
    return null;
  }
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

function receiptExit(r: DeliveryReceipt | null): number {
  return r && !isComplete(r) ? ExitCode.UNCONFIRMED : ExitCode.OK;
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

  const env = (c: Command) =>
    c.addOption(new Option('-e, --env <environment>', 'environment').env('AVIARY_ENV').makeOptionMandatory());

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
      const envs = o.env ? [o.env] : await environments(api);
      let all = listOf(await api.get('/flags'), 'flags').map(asObj);
      if (!o.archived) all = all.filter((f) => f.archived !== true);
      if (o.search) {
        const q = o.search.toLowerCase();
        all = all.filter((f) => [f.key, f.description, ...(Array.isArray(f.tags) ? f.tags : [])].some((x) => str(x).toLowerCase().includes(q)));
      }
      const rows = await Promise.all(all.map(async (f) => ({ flag: f, states: await statesOf(api, f, envs) })));
      print(
        g,
        rows.map((r) => ({ ...r.flag, environments: r.states })),
        () =>
          rows.length === 0
            ? 'no flags'
            : renderTable(
                ['KEY', 'KIND', ...envs.map((e) => e.toUpperCase()), 'DESCRIPTION'],
                rows.map((r) => [str(r.flag.key), str(r.flag.kind), ...envs.map((e) => stateWord(r.states[e] ?? {})), str(r.flag.description)]),
              ),
      );
    });

  flags
    .command('get <key>')
    .description("a flag's variants and its state in each environment")
    .option('-e, --env <environment>', 'only this environment')
    .action(async (key: string, o: { env?: string }, cmd: Command) => {
      const { api, g } = client(cmd);
      const flag = asObj(await api.get(`/flags/${seg(key)}`));
      const envs = o.env ? [o.env] : await environments(api);
      const states = await statesOf(api, flag, envs, true);
      print(g, { ...flag, environments: states }, () => {
        const variants = Array.isArray(flag.variants) ? flag.variants.map(asObj) : [];
        const lines = [
          renderPairs([
            ['flag', str(flag.key)],
            ['kind', str(flag.kind)],
            ['description', str(flag.description) || '-'],
            ['tags', Array.isArray(flag.tags) && flag.tags.length ? flag.tags.join(', ') : '-'],
          ]),
          '',
          renderTable(['VARIANT', 'VALUE'], variants.map((v) => [str(v.key), JSON.stringify(v.value)])),
          '',
          renderTable(
            ['ENVIRONMENT', 'STATE', 'OFF VARIANT', 'TARGETS', 'RULES', 'FALLTHROUGH', 'VERSION'],
            envs.map((e) => {
              const s = states[e] ?? {};
              return [e, stateWord(s), str(s.offVariant), String(Array.isArray(s.targets) ? s.targets.length : 0), String(Array.isArray(s.rules) ? s.rules.length : 0), describeServe(s.fallthrough), str(s.version)];
            }),
          ),
        ];
        return lines.join('\n');
      });
    });

  env(
    flags
      .command('kill <key>')
      .description('turn a flag off (serve its off variant everywhere) and wait for the SDKs to confirm')
      .option('-r, --reason <text>', 'why (recorded in the audit log)')
      .option('-w, --wait <seconds>', 'how long to wait for delivery receipts', '10'),
  ).action(async (key: string, o: { env: string; reason?: string; wait: string }, cmd: Command) => {
    await flip(cmd, 'kill', key, o);
  });
  env(
    flags
      .command('revive <key>')
      .description('undo a kill: the flag serves its targeting again')
      .option('-r, --reason <text>', 'why (recorded in the audit log)')
      .option('-w, --wait <seconds>', 'how long to wait for delivery receipts', '10'),
  ).action(async (key: string, o: { env: string; reason?: string; wait: string }, cmd: Command) => {
    await flip(cmd, 'revive', key, o);
  });

  async function flip(cmd: Command, action: 'kill' | 'revive', key: string, o: { env: string; reason?: string; wait: string }) {
    const { api, g } = client(cmd);
    const waitMs = seconds(o.wait) * 1000;
    const at = Date.now();
    // `waitMs` lets the server hold the answer until the SDKs acknowledge (at most 10 s); we poll for the rest.
    const res = await api.post(`/flags/${seg(key)}/environments/${seg(o.env)}/${action}?waitMs=${Math.min(waitMs, 10_000)}`, o.reason ? { reason: o.reason } : {});
    const receipt = await awaitDelivery(api, o.env, res, at, waitMs);
    const state = asObj(asObj(res).state ?? res);
    print(g, { flag: key, environment: o.env, action, state, receipt }, () =>
      [
        `${action === 'kill' ? 'killed' : 'revived'} ${key} in ${o.env}${o.reason ? ` (reason: ${o.reason})` : ''}: now ${state.enabled === false ? `serving "${str(state.offVariant)}" to everyone` : 'serving its targeting'}`,
        `delivery: ${receipt ? describeReceipt(receipt) : 'the server sent no delivery receipt'}`,
        ...(receipt && receipt.pending.length ? [`not yet applied by: ${receipt.pending.join(', ')}`] : []),
      ].join('\n'),
    );
    process.exitCode = receiptExit(receipt);
  }

  // ---- environments ----
  const envCmd = program.command('env').description('environment-wide actions');
  envCmd
    .command('list')
    .description('environments')
    .action(async (_o: unknown, cmd: Command) => {
      const { api, g } = client(cmd);
      const list = listOf(await api.get('/environments'), 'environments').map(asObj);
      print(g, list, () => renderTable(['KEY', 'NAME', 'VERSION'], list.map((e) => [envKey(e), str(e.name), str(e.version)])));
    });
  envCmd
    .command('kill-all <environment>')
    .description('panic button: kill every flag of the environment (restore with revive-all)')
    .option('-r, --reason <text>', 'why (recorded in the audit log)')
    .option('--spare <keys>', 'comma-separated flags to leave alone')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('-w, --wait <seconds>', 'how long to wait for delivery receipts', '10')
    .action(async (environment: string, o: { reason?: string; spare?: string; yes?: boolean; wait: string }, cmd: Command) => {
      const { api, g } = client(cmd);
      if (!o.yes && !(await confirm(`This turns off EVERY flag in ${environment}. Type the environment name to confirm: `, environment))) {
        throw new UsageError(`not confirmed: pass --yes, or type "${environment}" when asked (needs a terminal)`);
      }
      const body: Json = {};
      if (o.reason) body.reason = o.reason;
      if (o.spare) body.spare = o.spare.split(',').map((s) => s.trim()).filter(Boolean);
      const at = Date.now();
      const waitMs = seconds(o.wait) * 1000;
      const res = await api.post(`/environments/${seg(environment)}/kill-all?waitMs=${Math.min(waitMs, 10_000)}`, body);
      const receipt = await awaitDelivery(api, environment, res, at, waitMs);
      const r = asObj(res);
      const killed = listOf(r.killed ?? r.flags);
      print(g, { environment, result: res, receipt }, () =>
        [
          `panic: killed ${killed.length ? `${killed.length} flag(s)` : 'every flag'} in ${environment}${o.spare ? ` (spared: ${o.spare})` : ''}; restore with \`aviary env revive-all ${environment}\``,
          `delivery: ${receipt ? describeReceipt(receipt) : 'the server sent no delivery receipt'}`,
        ].join('\n'),
      );
      process.exitCode = receiptExit(receipt);
    });
  envCmd
    .command('revive-all <environment>')
    .description('undo the panic: every flag back to its state before kill-all')
    .option('-r, --reason <text>', 'why (recorded in the audit log)')
    .option('-w, --wait <seconds>', 'how long to wait for delivery receipts', '10')
    .action(async (environment: string, o: { reason?: string; wait: string }, cmd: Command) => {
      const { api, g } = client(cmd);
      const at = Date.now();
      const waitMs = seconds(o.wait) * 1000;
      const res = await api.post(`/environments/${seg(environment)}/revive-all?waitMs=${Math.min(waitMs, 10_000)}`, o.reason ? { reason: o.reason } : {});
      const receipt = await awaitDelivery(api, environment, res, at, waitMs);
      print(g, { environment, result: res, receipt }, () =>
        [`restored ${listOf(asObj(res).revived).length} flag(s) in ${environment} to their state before the panic`, `delivery: ${receipt ? describeReceipt(receipt) : 'the server sent no delivery receipt'}`].join('\n'),
      );
      process.exitCode = receiptExit(receipt);
    });
  envCmd
    .command('sdks <environment>')
    .description('connected SDKs and the version each has applied')
    .action(async (environment: string, _o: unknown, cmd: Command) => {
      const { api, g } = client(cmd);
      const body = await api.get(`/environments/${seg(environment)}/sdks`);
      const list = listOf(body, 'sdks').map(asObj);
      print(g, body, () =>
        list.length === 0
          ? 'no SDKs connected'
          : renderTable(
              ['ID', 'APP', 'SDK', 'CONNECTED', 'APPLIED VERSION', 'APPLIED AT'],
              list.map(toConnectedSdk).filter((s) => s !== null).map((s) => [s.id, s.app || '-', s.sdkVersion || '-', iso(s.connectedAt), str(s.appliedVersion ?? '-'), iso(s.appliedAt)]),
            ),
      );
    });

  // ---- canary ----
  const canary = program.command('canary').description('inspect and steer a canary rollout');
  env(canary.command('status <flag>').description("the canary's stage, state and the guard's latest comparison")).action(
    async (flag: string, o: { env: string }, cmd: Command) => {
      const { api, g } = client(cmd);
      const c = asObj(await api.get(`/flags/${seg(flag)}/environments/${seg(o.env)}/canary`));
      print(g, c, () => describeCanary(flag, o.env, c));
    },
  );
  for (const [action, what] of [
    ['advance', 'move to the next stage now'],
    ['rollback', 'send all traffic back to the control variant'],
    ['promote', 'serve the canary variant to everyone and finish'],
    ['pause', 'hold the current stage (the guard still watches)'],
    ['resume', 'continue a paused canary'],
  ] as const) {
    env(canary.command(`${action} <flag>`).description(what).option('-r, --reason <text>', 'why (recorded in the audit log)')).action(
      async (flag: string, o: { env: string; reason?: string }, cmd: Command) => {
        const { api, g } = client(cmd);
        const c = asObj(await api.post(`/flags/${seg(flag)}/environments/${seg(o.env)}/canary/${action}`, o.reason ? { reason: o.reason } : {}));
        print(g, c, () => describeCanary(flag, o.env, c));
      },
    );
  }

  // ---- tokens ----
  const tokens = program.command('tokens').description('admin tokens and SDK keys');
  tokens
    .command('list')
    .description('tokens (never their secrets)')
    .action(async (_o: unknown, cmd: Command) => {
      const { api, g } = client(cmd);
      const list = listOf(await api.get('/tokens'), 'tokens').map(asObj);
      print(g, list, () =>
        renderTable(['ID', 'KIND', 'ENVIRONMENT', 'NAME', 'CREATED', 'LAST USED', 'REVOKED'], list.map((t) => [str(t.id), str(t.kind), str(t.environment) || '-', str(t.name), iso(num(t.createdAt)), iso(num(t.lastUsedAt)), iso(num(t.revokedAt))])),
      );
    });
  tokens
    .command('create')
    .description('create a token; its secret is printed once')
    .addOption(new Option('-k, --kind <kind>', 'admin or sdk').choices(['admin', 'sdk']).makeOptionMandatory())
    .requiredOption('-n, --name <name>', 'who or what uses it')
    .option('-e, --env <environment>', 'environment (sdk keys)')
    .action(async (o: { kind: 'admin' | 'sdk'; name: string; env?: string }, cmd: Command) => {
      if (o.kind === 'sdk' && !o.env) throw new UsageError('an sdk key reads one environment: pass --env');
      const { api, g } = client(cmd);
      const t = asObj(await api.post('/tokens', { kind: o.kind, name: o.name, ...(o.env ? { environment: o.env } : {}) }));
      print(g, t, () =>
        [
          renderPairs([
            ['id', str(t.id)],
            ['kind', str(t.kind)],
            ...(t.environment ? ([['environment', str(t.environment)]] as Array<[string, string]>) : []),
            ['name', str(t.name)],
            ['token', str(t.token)],
          ]),
          '',
          'The token is shown only now: store it in your secret manager.',
        ].join('\n'),
      );
    });
  tokens
    .command('revoke <id>')
    .description('revoke a token (its streams close, its requests fail)')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const { api, g } = client(cmd);
      const res = await api.del(`/tokens/${seg(id)}`);
      print(g, res ?? { id, revoked: true }, () => `revoked token ${id}`);
    });

  return program;
}

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 600) throw new UsageError(`--wait must be a number of seconds from 0 to 600, got ${JSON.stringify(v)}`);
  return n;
}

function describeServe(s: unknown): string {
  const o = asObj(s);
  if (typeof o.variant === 'string') return o.variant;
  const r = asObj(o.rollout);
  if (Array.isArray(r.weights)) return r.weights.map(asObj).map((w) => `${str(w.variant)} ${str(w.percent)}%`).join(' / ');
  return '-';
}

function describeCanary(flag: string, env: string, c: Json): string {
  const stages = Array.isArray(c.stages) ? c.stages.map(asObj) : [];
  const idx = typeof c.stage === 'number' ? c.stage : -1;
  const timeline = stages
    .map((s, i) => {
      const label = typeof s.segment === 'string' ? `[${s.segment}]` : `${str(s.percent)}%`;
      return i === idx ? `>${label}<` : label;
    })
    .join(' → ');
  // While active, `comparison` is live; afterwards `lastDecision` keeps the guard's final word.
  const cmp = asObj(c.comparison ?? c.lastDecision);
  const decision = asObj(cmp.decision);
  const lines = [
    renderPairs([
      ['canary', `${flag} in ${env}: ${str(c.canary)} against ${str(c.control)}`],
      ['state', str(c.state)],
      ['stage', `${idx >= 0 ? idx + 1 : '-'} of ${stages.length}${c.percent !== undefined ? ` (${str(c.percent)}% of traffic)` : ''}`],
      ['timeline', timeline || '-'],
      ['decision', str(typeof cmp.decision === 'string' ? cmp.decision : decision.action ?? decision.kind) || '-'],
      ['why', str(cmp.why ?? decision.reason ?? cmp.reason) || '-'],
    ]),
  ];
  const sides = ['control', 'canary'].map((k) => [k, asObj(cmp[k])] as const).filter(([, v]) => Object.keys(v).length);
  if (sides.length) {
    lines.push(
      '',
      renderTable(
        ['SIDE', 'SAMPLES', 'ERROR RATE', 'P50 MS', 'P95 MS'],
        sides.map(([k, v]) => [k, str(v.samples ?? v.outcomes ?? v.evaluations), fmtRate(v.errorRate), str(asObj(v.latencyMs).p50 ?? v.p50), str(asObj(v.latencyMs).p95 ?? v.p95)]),
      ),
    );
  }
  return lines.join('\n');
}

function iso(t: number | null): string {
  return t === null ? '-' : new Date(t).toISOString();
}

function fmtRate(v: unknown): string {
  return typeof v === 'number' ? `${(v * 100).toFixed(2)}%` : '-';
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
