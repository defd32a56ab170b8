/**
 * An existing SQLite installation keeps working: a file migrated by an earlier Aviary (the migrations it had, from the
 * old `migrations/` folder) opens with this one, which applies only what is new; its data and migration history carry
 * over.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { MIGRATIONS_FOLDER } from '../../server/storage/db.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('upgrading a SQLite installation', () => {
  it('a file migrated by the previous release opens, gets only the new migrations, and keeps its data', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aviary-upgrade-'));
    dirs.push(dir);
    // The previous release: the first four migrations, in the folder layout it had (migrations/ with meta/).
    const old = join(dir, 'old-migrations');
    mkdirSync(join(old, 'meta'), { recursive: true });
    const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8')) as { entries: { tag: string }[] };
    const previous = journal.entries.slice(0, 4);
    expect(previous.map((e) => e.tag)).toEqual([
      '0000_initial',
      '0001_metrics_minute_index',
      '0002_server_state',
      '0003_client_side_keys_canary_evidence',
    ]);
    for (const e of previous) cpSync(join(MIGRATIONS_FOLDER, `${e.tag}.sql`), join(old, `${e.tag}.sql`));
    writeFileSync(join(old, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries: previous }));
    const file = join(dir, 'aviary.db');
    const sqlite = new Database(file);
    migrate(drizzle(sqlite), { migrationsFolder: old });
    const now = Date.now();
    sqlite.prepare("INSERT INTO environments (key, name, version, created_at) VALUES ('production', 'Production', 41, ?)").run(now);
    sqlite.prepare("INSERT INTO flags (key, kind, variants, created_at, updated_at) VALUES ('legacy', 'boolean', ?, ?, ?)").run(
      JSON.stringify([
        { key: 'on', value: true },
        { key: 'off', value: false },
      ]),
      now,
      now,
    );
    sqlite
      .prepare("INSERT INTO flag_states (environment, flag, state, version, updated_at) VALUES ('production', 'legacy', ?, 3, ?)")
      .run(JSON.stringify({ enabled: true, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } }), now);
    const hashesBefore = sqlite.prepare('SELECT hash, created_at FROM __drizzle_migrations ORDER BY id').all();
    sqlite.close();

    const app = await buildApp({ dbPath: file, adminToken: 'upgrade-admin-token-0123456789' });
    try {
      expect(app.snapshots.version('production')).toBe(41);
      expect(app.snapshots.get('production')!.flags.find((f) => f.key === 'legacy')!.state).toMatchObject({ enabled: true, version: 3 });
      expect((await app.stores.states.kill({ tokenId: null, name: 'upgrade' }, 'production', 'legacy', null)).environmentVersion).toBe(42);
    } finally {
      await app.close();
    }
    const after = new Database(file, { readonly: true });
    const history = after.prepare('SELECT hash, created_at FROM __drizzle_migrations ORDER BY id').all();
    after.close();
    // The old history is kept as it was; only the migrations it did not have were added.
    expect(history.slice(0, hashesBefore.length)).toEqual(hashesBefore);
    expect(history).toHaveLength(journal.entries.length);
  });
});
