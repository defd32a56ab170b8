/** The store contract (stores.contract.ts) on SQLite. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../../server/app.js';
import { storeContract } from './stores.contract.js';

storeContract('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'aviary-contract-'));
  const app = await buildApp({ dbPath: join(dir, 'aviary.db'), adminToken: 'contract-admin-token-0123456789' });
  return {
    app,
    close: async () => {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
