/**
 * Shared pieces of the stream and SDK tests: flag changes through the real admin API, a raw protocol-level stream
 * client (for what the SDK hides: resume, acks, close codes), and small waiting helpers.
 */
import WebSocket from 'ws';
import { encodeMessage, parseServerMessage, type ClientMessage, type ServerMessage } from '@aviary/sdk/protocol';
import type { AviaryClient } from '@aviary/sdk';
import { api, type TestServer } from '../helpers/server.js';

type Srv = Pick<TestServer, 'url' | 'adminToken'>;

function check(res: { status: number; body: unknown }, what: string): void {
  if (res.status >= 300) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
}

/** Creates a boolean flag (variants on/off) and serves `on` to everyone in `env`. */
export async function booleanFlag(srv: Srv, key: string, env = 'production', enabled = true): Promise<void> {
  check(await api(srv).post('/api/v1/flags', { key, kind: 'boolean' }), `create ${key}`);
  await setState(srv, key, env, { enabled, offVariant: 'off', targets: [], rules: [], fallthrough: { variant: 'on' } });
}

/**
 * The OpenFeature and OFREP tests' flags in production: `new-checkout` (boolean: target `vip`, rule country NL, 50/50
 * fallthrough rollout) and `banner` (string, always `hello`).
 */
export async function checkoutAndBanner(srv: Srv): Promise<void> {
  await booleanFlag(srv, 'new-checkout');
  await setState(srv, 'new-checkout', 'production', {
    enabled: true,
    offVariant: 'off',
    targets: [{ variant: 'on', keys: ['vip'] }],
    rules: [{ id: 'nl', conditions: [{ attribute: 'country', op: 'in', values: ['NL'] }], serve: { variant: 'on' } }],
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'on', percent: 50 },
          { variant: 'off', percent: 50 },
        ],
      },
    },
  });
  check(await api(srv).post('/api/v1/flags', { key: 'banner', kind: 'string', variants: [{ key: 'a', value: 'hello' }] }), 'create banner');
  await setState(srv, 'banner', 'production', { enabled: true, offVariant: 'a', targets: [], rules: [], fallthrough: { variant: 'a' } });
}

/** Replaces a flag's state in `env`. */
export async function setState(srv: Srv, key: string, env: string, state: Record<string, unknown>): Promise<void> {
  check(await api(srv).put(`/api/v1/flags/${key}/environments/${env}`, state), `state ${key}`);
}

export async function kill(srv: Srv, key: string, env = 'production', waitMs?: number): Promise<any> {
  const res = await api(srv).post(`/api/v1/flags/${key}/environments/${env}/kill${waitMs ? `?waitMs=${waitMs}` : ''}`);
  check(res, `kill ${key}`);
  return res.body;
}

export async function revive(srv: Srv, key: string, env = 'production'): Promise<void> {
  check(await api(srv).post(`/api/v1/flags/${key}/environments/${env}/revive`), `revive ${key}`);
}

/** Polls `cond` every 5 ms until it holds or `timeoutMs` passes (then throws with `what`). */
export async function until(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Resolves with the next `change` event of a client. */
export function nextChange(client: AviaryClient, timeoutMs = 5_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no change event')), timeoutMs);
    const off = client.on('change', (keys) => {
      clearTimeout(timer);
      off();
      resolve(keys);
    });
  });
}

/** A protocol-level client: sends what it is told, records every message and the close code. */
export class RawStream {
  readonly messages: ServerMessage[] = [];
  closeCode: number | null = null;
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;

  constructor(srv: Pick<TestServer, 'url'>, key: string, options: { protocol?: boolean; query?: string } = {}) {
    const url = srv.url.replace(/^http/, 'ws') + '/sdk/v1/stream' + (options.query ?? '');
    this.ws = options.protocol
      ? new WebSocket(url, ['aviary.v1', `aviary-sdk-key.${key}`])
      : new WebSocket(url, ['aviary.v1'], { headers: { authorization: `Bearer ${key}` } });
    this.ws.on('message', (data) => {
      const parsed = parseServerMessage(data.toString());
      if (parsed.ok) this.messages.push(parsed.message);
      else throw new Error(`server sent an unparseable message: ${parsed.error}`);
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.ws.once('close', (code) => resolve((this.closeCode = code))));
  }

  send(message: ClientMessage): void {
    this.ws.send(encodeMessage(message));
  }

  async hello(lastVersion?: number, sdkId = 'raw-' + Math.random().toString(36).slice(2)): Promise<void> {
    await this.opened;
    this.send({ type: 'hello', sdkId, sdkVersion: 'test', app: { name: 'raw-test' }, ...(lastVersion !== undefined ? { lastVersion } : {}) });
  }

  /** Waits for a message of `type` after the first `from` messages; returns it. */
  async next<T extends ServerMessage['type']>(type: T, from = 0, timeoutMs = 5_000): Promise<Extract<ServerMessage, { type: T }>> {
    let found: ServerMessage | undefined;
    await until(() => (found = this.messages.slice(from).find((m) => m.type === type)) !== undefined, `a ${type} message`, timeoutMs);
    return found as Extract<ServerMessage, { type: T }>;
  }

  close(): void {
    this.ws.terminate();
  }
}
