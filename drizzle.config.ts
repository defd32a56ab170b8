import { defineConfig } from 'drizzle-kit';

// `npm run db:generate` writes reviewed SQL into migrations/ (plus meta/, which drizzle's migrator needs).
export default defineConfig({
  dialect: 'sqlite',
  schema: './server/storage/schema.ts',
  out: './migrations',
});
