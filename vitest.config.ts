import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Tests run against sources: package exports carry an `aviary-source` condition pointing at .ts files.
    conditions: ['aviary-source'],
  },
  ssr: { resolve: { conditions: ['aviary-source'] } },
  test: {
    include: ['test/**/*.test.ts'],
    // One PostgreSQL per run (embedded, or AVIARY_TEST_DATABASE_URL) with a migrated template: test/helpers/postgres.ts.
    globalSetup: ['test/setup/postgres.ts'],
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
