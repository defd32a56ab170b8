/**
 * vitest global setup: one PostgreSQL for the whole run (see test/helpers/postgres.ts).
 *
 * Without `AVIARY_TEST_DATABASE_URL` it starts an embedded PostgreSQL in a temporary directory and removes it at the
 * end; with it, it uses that server (the URL must allow CREATE DATABASE) and drops only the databases this run made.
 * Either way it creates one migrated template database, which test files copy.
 */
import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { migratePostgres } from '../../server/storage/postgres-port.js';
import { type EmbeddedPostgresServer, startEmbeddedPostgres, withAdmin, withDatabase } from './postgres-server.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.AVIARY_TEST_DATABASE_URL;
  let server: EmbeddedPostgresServer | null = null;
  const adminUrl = external ?? (server = await startEmbeddedPostgres()).url;
  // Unique per run, so that runs sharing an external server never touch each other's databases.
  const prefix = `aviary_t${randomBytes(4).toString('hex')}_`;
  const template = `${prefix}template`;
  try {
    await withAdmin(adminUrl, (sql) => sql.unsafe(`CREATE DATABASE "${template}"`));
    await migratePostgres(withDatabase(adminUrl, template));
  } catch (err) {
    await server?.dispose();
    throw err;
  }
  project.provide('aviaryPostgres', { adminUrl, template, prefix });

  return async () => {
    if (server) {
      await server.dispose();
      return;
    }
    await withAdmin(adminUrl, async (sql) => {
      const leftovers = await sql.unsafe<{ datname: string }[]>('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [prefix]);
      for (const { datname } of leftovers) await sql.unsafe(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    });
  };
}
