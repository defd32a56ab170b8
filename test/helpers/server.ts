/**
 * Starts a real Aviary server on 127.0.0.1 with an ephemeral port and a temporary SQLite file.
 * Stable API (other test suites use it):
 *
 *   const srv = await startServer();           // or startServer({ now: () => t, dbPath })
 *   srv.url                                    // "http://127.0.0.1:<port>"
 *   srv.adminToken                             // admin token (Bearer)
 *   srv.sdkKeys.production                     // SDK key per default environment (development, staging, production)
 *   srv.app                                    // the fastify instance (app.stores, app.changeFeed, ...)
 *   srv.dbPath, srv.dir                        // the temp database and its directory
 *   await srv.close({ keepData?: true })       // closes the server; removes the temp dir unless keepData
 *   await srv.restart()                        // close and start again on the same database (new port)
 *
 * Also: `api(srv)` for JSON requests with the admin token.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type Database from 'better-sqlite3';
import { buildApp, type BuildAppOptions } from '../../server/app.js';
import { SqlitePort } from '../../server/storage/sqlite-port.js';

export interface TestServer {
  url: string;
  adminToken: string;
  sdkKeys: Record<'development' | 'staging' | 'production', string> & Record<string, string>;
  app: FastifyInstance;
  dbPath: string;
  dir: string;
  close(options?: { keepData?: boolean }): Promise<void>;
  restart(): Promise<TestServer>;
}

export interface StartServerOptions extends Omit<BuildAppOptions, 'dbPath' | 'store' | 'adminToken' | 'sdkKeys'> {
  /** Reuse a database file (e.g. to test persistence); default: a fresh temp file. */
  dbPath?: string;
}

const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';
const SDK_KEYS = {
  development: 'test-sdk-key-development-0123456789',
  staging: 'test-sdk-key-staging-0123456789abc',
  production: 'test-sdk-key-production-0123456789',
};

/** Starts a server; see the file comment. */
export async function startServer(options: StartServerOptions = {}): Promise<TestServer> {
  const dir = options.dbPath ? join(options.dbPath, '..') : mkdtempSync(join(tmpdir(), 'aviary-test-'));
  const dbPath = options.dbPath ?? join(dir, 'aviary.db');
  const { dbPath: _ignored, ...rest } = options;
  const app = await buildApp({ ...rest, dbPath, adminToken: ADMIN_TOKEN, sdkKeys: SDK_KEYS });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('server has no TCP address');
  const server: TestServer = {
    url: `http://127.0.0.1:${address.port}`,
    adminToken: ADMIN_TOKEN,
    sdkKeys: { ...SDK_KEYS },
    app,
    dbPath,
    dir,
    async close(closeOptions = {}) {
      await app.close();
      if (!closeOptions.keepData && !options.dbPath) rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await app.close();
      const next = await startServer({ ...options, dbPath });
      // The restarted server owns the temp dir from now on.
      const nextClose = next.close.bind(next);
      next.close = async (o = {}) => {
        await nextClose(o);
        if (!o.keepData && !options.dbPath) rmSync(dir, { recursive: true, force: true });
      };
      next.dir = dir;
      return next;
    },
  };
  return server;
}

/** A JSON response: status, headers, parsed body (undefined when empty). */
export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/** Sends a request; `body` is JSON-encoded unless it is a string. `token` defaults to the admin token. */
export async function request<T = any>(
  srv: Pick<TestServer, 'url' | 'adminToken'>,
  method: string,
  path: string,
  options: { body?: unknown; token?: string | null; headers?: Record<string, string> } = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? srv.adminToken : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let payload: string | undefined;
  if (options.body !== undefined) {
    payload = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(srv.url + path, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
  const text = await res.text();
  let body: unknown;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  return { status: res.status, headers: res.headers, body: body as T };
}

/** Shorthand: `api(srv).get('/api/v1/flags')`, `.post(path, body, opts)`, ... with the admin token by default. */
export function api(srv: Pick<TestServer, 'url' | 'adminToken'>) {
  type Opts = { token?: string | null; headers?: Record<string, string> };
  return {
    get: <T = any>(path: string, o: Opts = {}) => request<T>(srv, 'GET', path, o),
    delete: <T = any>(path: string, o: Opts & { body?: unknown } = {}) => request<T>(srv, 'DELETE', path, o),
    post: <T = any>(path: string, body?: unknown, o: Opts = {}) => request<T>(srv, 'POST', path, { ...o, ...(body !== undefined ? { body } : {}) }),
    put: <T = any>(path: string, body?: unknown, o: Opts = {}) => request<T>(srv, 'PUT', path, { ...o, ...(body !== undefined ? { body } : {}) }),
    patch: <T = any>(path: string, body?: unknown, o: Opts = {}) => request<T>(srv, 'PATCH', path, { ...o, ...(body !== undefined ? { body } : {}) }),
  };
}

/** The raw write connection of an app on SQLite (for tests that inspect or damage the file on purpose). */
export function sqliteOf(app: FastifyInstance): Database.Database {
  if (!(app.store instanceof SqlitePort)) throw new Error('this app does not run on SQLite');
  return app.store.sqlite;
}
