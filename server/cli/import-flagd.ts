/**
 * `aviary import --from flagd <file>`: flagd flag definitions into Aviary (server/flagd/translate.ts translates;
 * docs/import-flagd.md has the mapping). All or nothing where the CLI can tell: every flag must translate (or
 * `--partial` imports only those that do) and none may exist on the server, else it prints the list (flag, JSON path,
 * why) and changes nothing. Then, through the admin API, each flag is created and its state written in each
 * environment (`--env`, default every environment), audited with `--reason`. `--dry-run` prints what would be created.
 *
 * Exit codes: 0 imported (or, with --dry-run, would be); 2 bad usage (unreadable or non-JSON file, unknown --from or
 * --env); 3 no or rejected token; 5 server unreachable; 9 refused: some flags cannot be translated, or already exist
 * (nothing changed); 1 the server refused a write part-way (the flags created before it are listed).
 */
import { readFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { createApiClient, type ApiClient } from '@aviary/api-client';
import { translateFlagd, type AviaryServe, type Refusal, type TranslatedFlag } from '../flagd/translate.js';

/** Some flags cannot be imported (not translatable, or already on the server); nothing changed. */
export const IMPORT_REFUSED_EXIT = 9;

const serveText = (s: AviaryServe) =>
  'variant' in s
    ? s.variant
    : `rollout ${s.rollout.weights.map((w) => `${w.variant} ${w.percent}%`).join(' / ')}${s.rollout.bucketBy ? ` by ${s.rollout.bucketBy}` : ''}${s.rollout.salt ? ` salt "${s.rollout.salt}"` : ''}`;

function describeFlag(f: TranslatedFlag): string {
  const lines = [
    `${f.key} (${f.kind}; variants ${f.variants.map((v) => `${v.key}=${JSON.stringify(v.value)}`).join(', ')})${f.state.enabled ? '' : ' [disabled]'}`,
  ];
  for (const r of f.state.rules) {
    const conds = r.conditions.map((c) => `${c.attribute} ${c.negate ? 'not ' : ''}${c.op} ${JSON.stringify(c.values ?? [])}`).join(' and ');
    lines.push(`  if ${conds || 'always'} → ${serveText(r.serve)}`);
  }
  lines.push(`  otherwise → ${serveText(f.state.fallthrough)}`);
  return lines.join('\n');
}

const refusalLines = (list: Refusal[]) => list.map((r) => `  ${r.flag}  ${r.path}: ${r.why}`).join('\n');

/** Registers `aviary import` on the program (server/cli/main.ts). */
export function registerImportCommand(program: Command): void {
  program
    .command('import <file>')
    .description('import flag definitions from another tool (flagd); nothing changes unless every flag can be imported (exit 9)')
    .addOption(new Option('--from <tool>', 'the format of <file>').choices(['flagd']).makeOptionMandatory())
    .option('--env <env>', 'an environment to write the states to (repeatable; default: every environment)', (v: string, prev: string[] = []) => [
      ...prev,
      v,
    ])
    .option('--dry-run', 'print what would be created and change nothing')
    .option('--partial', 'import the flags that translate and list the others (instead of refusing them all)')
    .option('--reason <text>', 'reason recorded in the audit log', 'imported from flagd')
    .action(async (file: string, o: { env?: string[]; dryRun?: boolean; partial?: boolean; reason: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<{ url: string; token?: string; json?: boolean }>();
      let doc: unknown;
      try {
        doc = JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8'));
      } catch (e) {
        program.error(`error: ${file}: ${(e as Error).message}`, { exitCode: 2, code: 'aviary.usage' });
      }
      const t = translateFlagd(doc);
      const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
      const refuse = (title: string, list: Refusal[]) => {
        if (g.json) out(JSON.stringify({ imported: [], refused: list, notes: t.notes }, null, 2));
        process.stderr.write(`${title} (nothing changed):\n${refusalLines(list)}\n`);
        process.exitCode = IMPORT_REFUSED_EXIT;
      };
      if (t.refused.length > 0 && (!o.partial || t.flags.length === 0)) return refuse('cannot import these flags from flagd', t.refused);
      if (!g.token) {
        process.stderr.write('error: no admin token: set AVIARY_TOKEN or pass --token\n');
        process.exitCode = 3;
        return;
      }
      const token = g.token;
      const api: ApiClient = createApiClient({ baseUrl: g.url, token: () => token, timeoutMs: 10_000 });
      const allEnvs = (await api.get('/api/v1/environments')).environments.map((e) => e.key);
      for (const e of o.env ?? [])
        if (!allEnvs.includes(e)) program.error(`error: --env ${e}: no such environment`, { exitCode: 2, code: 'aviary.usage' });
      const envs = o.env ?? allEnvs;
      const existing = new Set((await api.get('/api/v1/flags', { params: { query: { archived: 'all' } } })).flags.map((f) => f.key));
      const clash = t.flags
        .filter((f) => existing.has(f.key))
        .map((f) => ({ flag: f.key, path: `/flags/${f.key}`, why: 'a flag with this key already exists' }));
      if (clash.length > 0) return refuse('cannot import these flags from flagd', clash);
      const summary = { imported: t.flags.map((f) => f.key), environments: envs, refused: t.refused, notes: t.notes, dryRun: o.dryRun === true };
      if (o.dryRun) {
        if (g.json) out(JSON.stringify({ ...summary, flags: t.flags }, null, 2));
        else out(`would create ${t.flags.length} flag(s) in ${envs.join(', ')}:\n${t.flags.map(describeFlag).join('\n')}`);
      } else {
        // One flags-as-code apply (docs/flags-as-code.md) that lists only the imported flags and prunes nothing: every
        // flag and state in one transaction, all of them or none (a refusal names the entry and changes nothing).
        const document = {
          version: 1,
          flags: t.flags.map((f) => ({
            key: f.key,
            kind: f.kind,
            description: f.description,
            variants: f.variants,
            environments: Object.fromEntries(envs.map((env) => [env, f.state])),
          })),
        };
        await api.post('/api/v1/apply', {
          body: { document: document as never, dryRun: false, prune: false, ...(o.reason ? { reason: o.reason } : {}) },
        });
        const created = t.flags.map((f) => f.key);
        if (g.json) out(JSON.stringify(summary, null, 2));
        else out(`imported ${created.length} flag(s) into ${envs.join(', ')}: ${created.join(', ')}`);
      }
      if (!g.json && t.refused.length) process.stderr.write(`not imported (--partial):\n${refusalLines(t.refused)}\n`);
      if (!g.json && t.notes.length) process.stderr.write(`notes:\n${refusalLines(t.notes)}\n`);
    });
}
