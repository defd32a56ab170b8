/** The store contract (stores.contract.ts) on PostgreSQL. */
import { buildApp } from '../../server/app.js';
import { openPostgres } from '../../server/storage/postgres-port.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { storeContract } from './stores.contract.js';

storeContract('PostgreSQL', async () => {
  const db = await createTestDatabase();
  const app = await buildApp({ store: await openPostgres(db.url), adminToken: 'contract-admin-token-0123456789' });
  return {
    app,
    close: async () => {
      await app.close();
      await db.drop();
    },
  };
});
