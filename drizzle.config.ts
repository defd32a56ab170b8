import { defineConfig } from 'drizzle-kit';

// `npm run db:generate` writes reviewed SQL into migrations/sqlite/ (plus meta/, which drizzle's migrator needs) and,
// with drizzle-postgres.config.ts, into migrations/postgres/. The two schemas are kept equal by schema-parity.ts.
export default defineConfig({
  dialect: 'sqlite',
  schema: './server/storage/schema.ts',
  out: './migrations/sqlite',
});
