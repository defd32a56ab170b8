import { statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { api, startServer, sqliteOf } from '../helpers/server.js';

describe('WAL checkpoints', () => {
  it('happen on the worker thread: the serving connection never checkpoints, yet the database file catches up', async () => {
    const srv = await startServer();
    try {
      expect(sqliteOf(srv.app).pragma('wal_autocheckpoint', { simple: true })).toBe(0);
      const a = api(srv);
      await new Promise((r) => setTimeout(r, 1200)); // let boot writes settle into the file
      const before = statSync(srv.dbPath).size;
      const actor = { tokenId: null, name: 'test' };
      for (let i = 0; i < 150; i++) srv.app.stores.flags.create(actor, { key: `cp-${i}`, kind: 'boolean', description: 'x'.repeat(500) });
      const deadline = Date.now() + 5000;
      while (statSync(srv.dbPath).size === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(statSync(srv.dbPath).size).toBeGreaterThan(before);
      expect((await a.get('/api/v1/flags?q=cp-149')).body.flags).toHaveLength(1);
    } finally {
      await srv.close();
    }
  });
});
