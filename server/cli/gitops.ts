/**
 * Flags as code in the CLI (CONTRACT §15; docs/flags-as-code.md): `aviary export`, `aviary plan -f`, `aviary apply -f`
 * and `aviary promote`. The server does the work (GET /api/v1/export, POST /api/v1/apply, POST
 * /api/v1/flags/{key}/promote: server/gitops/); this file reads and writes YAML and prints the plan.
 */
import { readFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import YAML from 'yaml';
import type { ApiClient, Schemas } from '@aviary/api-client';
import { ExitCode } from './exit-codes.js';
import { safeText } from './table.js';

type PlanChange = Schemas['PlanChange'];
type StateChange = Schemas['StateChange'];

/** What main.ts lends these commands (so they map failures to exit codes exactly like the others). */
export interface GitopsDeps {
  client(cmd: Command): { api: ApiClient; g: { json?: boolean } };
  confirm(question: string, expected: string): Promise<boolean>;
  /** Throws the CLI's usage error (exit 2). */
  usage(message: string): never;
}

/** The schema reference of an exported file's first line (editors with the YAML language server validate with it). */
export const DEFAULT_SCHEMA_REF = './aviary.schema.json';

const out = (s: string) => process.stdout.write(safeText(s.endsWith('\n') ? s : `${s}\n`));

/**
 * YAML 1.1 quoting on output (read back as 1.2): strings such as `on`, `off`, `yes` and ISO dates are quoted, so that
 * no YAML tool (1.1 or 1.2) reads a variant key as a boolean or a date value as a timestamp.
 */
const YAML_OPTIONS = { version: '1.1', lineWidth: 0, aliasDuplicateObjects: false } as const;

/** The document as YAML, with the schema comment first. Member order is the server's (stable, sorted). */
export function toYaml(doc: unknown, schemaRef: string): string {
  return `# yaml-language-server: $schema=${schemaRef}\n${YAML.stringify(doc, YAML_OPTIONS)}`;
}

function readDocument(file: string, deps: GitopsDeps): Schemas['AviaryDocument'] {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    return deps.usage(`${file}: cannot read (${(e as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    return deps.usage(`${file}: not YAML (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    return deps.usage(`${file}: not a flags document (expected a mapping with "version:")`);
  return doc as Schemas['AviaryDocument'];
}

const short = (v: unknown) => {
  const s = JSON.stringify(v) ?? 'undefined';
  return s.length > 100 ? `${s.slice(0, 97)}...` : s;
};

/** One field change as a line: `/path: before → after`, `+ value`, `- value`. */
export function fieldLine(c: StateChange): string {
  const path = c.path || '/';
  if (c.op === 'add') return `    ${path}: + ${short(c.after)}`;
  if (c.op === 'remove') return `    ${path}: - ${short(c.before)}`;
  return `    ${path}: ${short(c.before)} → ${short(c.after)}`;
}

const SIGN: Record<PlanChange['action'], string> = { create: '+', update: '~', delete: '-', archive: '-', unarchive: '~' };

/** The plan as a reviewer reads it: one heading per change, its fields below, then the totals. */
export function describePlan(changes: PlanChange[], fingerprint: string): string {
  if (changes.length === 0) return 'No changes: the server matches the file.';
  const lines: string[] = [];
  for (const c of changes) {
    const what = c.resource === 'state' ? `state of ${c.key} in ${c.environment}` : `${c.resource} ${c.key}`;
    const verb = c.action === 'archive' || c.action === 'unarchive' ? `${c.action} ` : '';
    lines.push(`${SIGN[c.action]} ${verb}${what}${c.etag ? ` (${c.etag})` : ''}`);
    if (c.action !== 'delete' && c.action !== 'archive') for (const f of c.fields) lines.push(fieldLine(f));
  }
  const count = (a: PlanChange['action']) => changes.filter((c) => c.action === a).length;
  lines.push(
    '',
    `Plan: ${count('create')} to create, ${count('update') + count('unarchive')} to update, ${count('delete')} to delete, ${count('archive')} to archive.`,
    `Fingerprint: ${fingerprint} (apply --plan ${fingerprint} applies exactly this, or nothing)`,
  );
  return lines.join('\n');
}

/** Registers `export`, `plan`, `apply` and `promote` on the program. */
export function registerGitops(program: Command, deps: GitopsDeps): void {
  program
    .command('export')
    .description('print every flag, segment and flag state as YAML (flags as code; docs/flags-as-code.md)')
    .option('--env <env...>', 'only these environments’ states (repeatable)')
    .option('--schema <ref>', 'the JSON Schema the first line points editors at', DEFAULT_SCHEMA_REF)
    .action(async (o: { env?: string[]; schema: string }, cmd: Command) => {
      const { api, g } = deps.client(cmd);
      const doc = await api.get('/api/v1/export', { params: { query: o.env?.length ? { environment: o.env } : {} } });
      out(g.json ? JSON.stringify(doc, null, 2) : toYaml(doc, o.schema));
    });

  program
    .command('plan')
    .description('print what applying a file would change (exit 0: nothing, 7: changes)')
    .requiredOption('-f, --file <file>', 'the YAML file (- for stdin)')
    .action(async (o: { file: string }, cmd: Command) => {
      const { api, g } = deps.client(cmd);
      const document = readDocument(o.file, deps);
      const res = await api.post('/api/v1/apply', { body: { document, dryRun: true } });
      out(g.json ? JSON.stringify(res, null, 2) : describePlan(res.changes, res.fingerprint));
      process.exitCode = res.changes.length ? ExitCode.CHANGES : ExitCode.OK;
    });

  program
    .command('apply')
    .description('apply a file: all of it or none of it, each change audited with the reason')
    .requiredOption('-f, --file <file>', 'the YAML file (- for stdin)')
    .addOption(new Option('-r, --reason <text>', 'why (recorded with every change in the audit log)').makeOptionMandatory())
    .option('--plan <fingerprint>', 'apply only if the changes are still exactly those of this plan (its fingerprint)')
    .action(async (o: { file: string; reason: string; plan?: string }, cmd: Command) => {
      const { api, g } = deps.client(cmd);
      const document = readDocument(o.file, deps);
      // Without --plan: plan now, show it, and apply exactly that (If-Match), so nothing slips in between.
      let fingerprint = o.plan;
      if (fingerprint === undefined) {
        const dry = await api.post('/api/v1/apply', { body: { document, dryRun: true } });
        if (dry.changes.length === 0) {
          out(g.json ? JSON.stringify({ ...dry, dryRun: false }, null, 2) : 'No changes: the server matches the file.');
          return;
        }
        if (!g.json) out(describePlan(dry.changes, dry.fingerprint));
        fingerprint = dry.fingerprint;
      }
      const res = await api.post('/api/v1/apply', {
        params: { header: { 'If-Match': `"${fingerprint}"` } },
        body: { document, dryRun: false, reason: o.reason },
      });
      const versions = Object.entries(res.versions)
        .map(([env, v]) => `${env} ${v}`)
        .join(', ');
      out(
        g.json
          ? JSON.stringify(res, null, 2)
          : res.applied
            ? `\nApplied ${res.changes.length} change(s) (versions: ${versions || 'none'}).`
            : 'No changes.',
      );
    });

  program
    .command('promote <flag>')
    .description("copy a flag's state from one environment to another, showing the diff first")
    .requiredOption('--from <env>', 'the environment to copy from')
    .requiredOption('--to <env>', 'the environment to copy to')
    .option('-r, --reason <text>', 'why (recorded in the audit log)')
    .option('--dry-run', 'only show the diff')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(async (flag: string, o: { from: string; to: string; reason?: string; dryRun?: boolean; yes?: boolean }, cmd: Command) => {
      const { api, g } = deps.client(cmd);
      const path = { key: flag };
      const dry = await api.request('post', '/api/v1/flags/{key}/promote', { params: { path }, body: { from: o.from, to: o.to, dryRun: true } });
      const diff = dry.data.changes;
      const text = diff.length
        ? [`~ state of ${flag} in ${o.to} (${dry.data.etag}) ← ${o.from}`, ...diff.map(fieldLine)].join('\n')
        : `No changes: ${flag} in ${o.to} already has the state it has in ${o.from}.`;
      if (o.dryRun || diff.length === 0) {
        out(g.json ? JSON.stringify(dry.data, null, 2) : text);
        return;
      }
      if (!g.json) out(text);
      if (!o.yes && !(await deps.confirm(`Promote ${flag} from ${o.from} to ${o.to}? Type "promote" to confirm: `, 'promote'))) {
        deps.usage('not confirmed: pass --yes, or type "promote" when asked (needs a terminal)');
      }
      const res = await api.post('/api/v1/flags/{key}/promote', {
        params: { path, header: { 'If-Match': dry.etag ?? `"${dry.data.etag}"` } },
        body: { from: o.from, to: o.to, dryRun: false, ...(o.reason !== undefined ? { reason: o.reason } : {}) },
      });
      out(
        g.json
          ? JSON.stringify(res, null, 2)
          : `promoted ${flag} from ${o.from} to ${o.to}: now ${res.etag} (environment version ${res.environmentVersion})`,
      );
    });
}
