/**
 * The example load-balancer configurations (deploy/haproxy.cfg, deploy/nginx.conf) stay true to the server they front:
 * the paths they route and check are the server's own routes, their timeouts outlast what the real server announces
 * (the stream heartbeat) and allows (the longest receipt wait, the database deadline), and nginx never refuses a body
 * the server would take. Nothing here needs HAProxy or nginx installed; deploy/smoke/lb-smoke.ts runs them for real.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createClient, type WebSocketConstructor } from '@aviary/sdk';
import { readConfig } from '../../server/config.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { RawStream } from '../stream/fixtures.js';

const root = join(import.meta.dirname, '../..');

/** HAProxy: sections (`global`, `defaults`, `frontend aviary`, `backend aviary_api`, ...) → their lines, comments dropped. */
function parseHaproxy(text: string): Map<string, string[][]> {
  const sections = new Map<string, string[][]>();
  let current: string[][] | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trimEnd();
    if (line.trim() === '') continue;
    const words = line.trim().split(/\s+/);
    if (!/^\s/.test(line)) sections.set(words.join(' '), (current = []));
    else current?.push(words);
  }
  return sections;
}

/** An HAProxy or nginx time (`35s`, `1h`, `500ms`, bare = ms for HAProxy / s for nginx) in ms. */
function ms(value: string, bare: 'ms' | 's'): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(value);
  if (!m) throw new Error(`not a time: ${value}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? bare) as 'ms'];
  return Number(m[1]) * unit;
}

/** nginx: a directive with its arguments and, for blocks, its children. */
interface Directive {
  name: string;
  args: string[];
  children: Directive[];
}

function parseNginx(text: string): Directive[] {
  const tokens = text
    .replace(/#.*$/gm, '')
    .match(/"[^"]*"|'[^']*'|[{};]|[^\s{};]+/g)!
    .map((t) => t.replace(/^(["'])(.*)\1$/, '$2'));
  let i = 0;
  const block = (): Directive[] => {
    const out: Directive[] = [];
    while (i < tokens.length && tokens[i] !== '}') {
      const words: string[] = [];
      while (tokens[i] !== ';' && tokens[i] !== '{') words.push(tokens[i++]!);
      const d: Directive = { name: words[0]!, args: words.slice(1), children: [] };
      if (tokens[i++] === '{') {
        d.children = block();
        i++; // '}'
      }
      out.push(d);
    }
    return out;
  };
  return block();
}

const find = (ds: Directive[], name: string, ...args: string[]) => ds.filter((d) => d.name === name && args.every((a, k) => d.args[k] === a));

let srv: TestServer;
let heartbeatMs: number;
let waitMsMax: number;
/** The path the real SDK opens its stream on. */
let streamPath: string;
const haproxy = parseHaproxy(readFileSync(join(root, 'deploy/haproxy.cfg'), 'utf8'));
const nginx = parseNginx(readFileSync(join(root, 'deploy/nginx.conf'), 'utf8'));

beforeAll(async () => {
  srv = await startServer();
  // What the real server announces to a stream, and the longest receipt wait its API accepts.
  const stream = new RawStream(srv, srv.sdkKeys.production);
  await stream.hello();
  heartbeatMs = (await stream.next('hydrate')).heartbeatMs;
  stream.close();
  const spec = (await (await fetch(`${srv.url}/openapi.json`)).json()) as {
    components: { parameters: { WaitMs: { schema: { maximum: number } } } };
  };
  waitMsMax = spec.components.parameters.WaitMs.schema.maximum;
  // Where the real SDK opens its stream (it connects through the load balancer with the same path).
  const opened: string[] = [];
  class RecordingWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[], options?: WebSocket.ClientOptions) {
      super(url, protocols, options);
      opened.push(url);
    }
  }
  const client = createClient({
    baseUrl: srv.url,
    sdkKey: srv.sdkKeys.production,
    flushIntervalMs: 0,
    WebSocket: RecordingWebSocket as unknown as WebSocketConstructor,
  });
  await client.ready();
  await client.close();
  streamPath = new URL(opened[0]!).pathname;
});

afterAll(async () => {
  await srv?.close();
});

/** The longest a replica may take to answer an admin request by itself: the longest receipt wait, or a database deadline. */
function longestAnswerMs(): number {
  return Math.max(waitMsMax, readConfig({}).dbTimeoutMs);
}

describe('deploy/haproxy.cfg', () => {
  const lines = (section: string) => haproxy.get(section) ?? [];
  const option = (section: string, ...words: string[]) => lines(section).find((l) => words.every((w, k) => l[k] === w));
  const timeout = (name: string) => ms(option('defaults', 'timeout', name)![2]!, 'ms');
  const servers = (backend: string) => lines(`backend ${backend}`).filter((l) => l[0] === 'server');

  it('sends the path the SDK streams on to the stream backend and everything else to the API backend', () => {
    expect(option('frontend aviary', 'use_backend')).toEqual(['use_backend', 'aviary_stream', 'if', '{', 'path', streamPath, '}']);
    expect(option('frontend aviary', 'default_backend')).toEqual(['default_backend', 'aviary_api']);
    expect(option('backend aviary_stream', 'balance')).toEqual(['balance', 'leastconn']);
  });

  it('checks readiness and liveness on routes the server answers 200 when it is ready', async () => {
    for (const [backend, expected] of [
      ['aviary_api', '/readyz'],
      ['aviary_alive', '/healthz'],
    ] as const) {
      const send = option(`backend ${backend}`, 'http-check', 'send')!;
      const uri = send[send.indexOf('uri') + 1]!;
      expect(uri).toBe(expected);
      expect((await fetch(srv.url + uri)).status).toBe(200);
      expect(option(`backend ${backend}`, 'http-check', 'expect')).toEqual(['http-check', 'expect', 'status', '200']);
      // Each replica is checked once per backend that checks (the backup entries track the other backend's checks).
      expect(
        servers(backend)
          .filter((s) => !s.includes('backup'))
          .every((s) => s.includes('check')),
      ).toBe(true);
    }
    // /readyz gives up on the database after 1 s; the check waits longer, so a slow database reads as 503, not a timeout.
    expect(timeout('check')).toBeGreaterThan(1000);
  });

  it('takes a replica that is not ready out of the stream backend with its streams, and falls back to live replicas', () => {
    const api = servers('aviary_api').filter((s) => !s.includes('backup'));
    const alive = servers('aviary_alive');
    const stream = servers('aviary_stream');
    expect(api.length).toBe(3);
    for (const [name, address] of api.map((s) => [s[1], s[2]])) {
      // The same replica in every backend, at the same address.
      expect(stream.find((s) => s[1] === name)).toEqual([
        'server',
        name,
        address,
        'track',
        `aviary_api/${name}`,
        'on-marked-down',
        'shutdown-sessions',
      ]);
      expect(alive.find((s) => s[1] === name)?.[2]).toBe(address);
      for (const backend of ['aviary_api', 'aviary_stream'])
        expect(servers(backend).find((s) => s[1] === `${name}-alive`)).toEqual([
          'server',
          `${name}-alive`,
          address,
          'backup',
          'track',
          `aviary_alive/${name}`,
        ]);
    }
    for (const backend of ['aviary_api', 'aviary_stream']) expect(option(`backend ${backend}`, 'option', 'allbackups')).toBeDefined();
  });

  it("keeps streams open longer than the heartbeat the server announces, and waits for a replica's own answer", () => {
    // A live stream carries a heartbeat every heartbeatMs; the SDK itself gives up after 2 × heartbeat + 1 s.
    expect(timeout('tunnel')).toBeGreaterThan(2 * heartbeatMs + 1000);
    // A kill with the longest ?waitMs=, or a write that waits for the database until its deadline, answers before
    // HAProxy gives up on it (a 504 would hide a kill that happened).
    expect(timeout('server')).toBeGreaterThan(longestAnswerMs());
    expect(timeout('client')).toBeGreaterThan(longestAnswerMs());
    // Retries go to another replica. Beyond refused connections, only reads are retried: a write a replica may have
    // received is never replayed (it could apply twice: two tokens, two audit entries).
    expect(option('defaults', 'option', 'redispatch')).toBeDefined();
    const retryOn = option('defaults', 'retry-on')?.slice(1) ?? ['conn-failure'];
    if (retryOn.some((r) => r !== 'conn-failure' && r !== 'none')) {
      for (const backend of ['aviary_api', 'aviary_stream'])
        expect(option(`backend ${backend}`, 'http-request', 'disable-l7-retry')).toEqual(['http-request', 'disable-l7-retry', 'unless', 'METH_GET']);
    }
  });

  it('replaces what clients send as X-Forwarded-For with the address it sees', () => {
    const frontend = lines('frontend aviary');
    const dropped = frontend.findIndex((l) => l.join(' ').toLowerCase() === 'http-request del-header x-forwarded-for');
    expect(dropped).toBeGreaterThanOrEqual(0);
    expect(frontend.findIndex((l) => l.join(' ') === 'option forwardfor')).toBeGreaterThan(dropped);
  });
});

describe('deploy/nginx.conf', () => {
  const http = find(nginx, 'http')[0]!.children;
  const server = find(http, 'server')[0]!.children;
  const arg = (ds: Directive[], name: string) => find(ds, name)[0]?.args;

  it('upgrades the path the SDK streams on and keeps it open longer than the heartbeat', () => {
    const [stream] = find(server, 'location', '=', streamPath);
    expect(stream).toBeDefined();
    const d = stream!.children;
    expect(arg(d, 'proxy_pass')).toEqual(['http://aviary_stream']);
    expect(arg(d, 'proxy_http_version')).toEqual(['1.1']);
    expect(find(d, 'proxy_set_header', 'Upgrade')[0]?.args).toEqual(['Upgrade', '$http_upgrade']);
    expect(find(d, 'proxy_set_header', 'Connection')[0]?.args).toEqual(['Connection', '$connection_upgrade']);
    expect(ms(arg(d, 'proxy_read_timeout')![0]!, 's')).toBeGreaterThan(2 * heartbeatMs + 1000);
    expect(ms(arg(d, 'proxy_send_timeout')![0]!, 's')).toBeGreaterThan(2 * heartbeatMs + 1000);
    expect(find(find(http, 'upstream', 'aviary_stream')[0]!.children, 'least_conn')).toHaveLength(1);
  });

  it("waits for a replica's own answer, and every location sets X-Forwarded-For to the address nginx sees", () => {
    const [api] = find(server, 'location', '/');
    expect(ms(arg(api!.children, 'proxy_read_timeout')![0]!, 's')).toBeGreaterThan(longestAnswerMs());
    // A location with any proxy_set_header inherits none, so each must set its own.
    for (const location of find(server, 'location'))
      expect(find(location.children, 'proxy_set_header', 'X-Forwarded-For')[0]?.args).toEqual(['X-Forwarded-For', '$remote_addr']);
    // The same replicas in both upstreams.
    const addresses = (name: string) => find(find(http, 'upstream', name)[0]!.children, 'server').map((s) => s.args[0]);
    expect(addresses('aviary_stream')).toEqual(addresses('aviary_api'));
    expect(addresses('aviary_api')).toHaveLength(3);
  });

  it('never refuses a request body the server would take (the largest: metrics reports)', async () => {
    const size = arg(http, 'client_max_body_size')![0]!;
    const m = /^(\d+)([km]?)$/i.exec(size)!;
    const bytes = Number(m[1]) * ({ '': 1, k: 1024, m: 1024 * 1024 } as Record<string, number>)[m[2]!.toLowerCase()]!;
    // One byte more than nginx lets through: the server itself refuses it, so nothing the server accepts is cut by nginx.
    const res = await fetch(`${srv.url}/sdk/v1/metrics`, {
      method: 'POST',
      headers: { authorization: `Bearer ${srv.sdkKeys.production}`, 'content-type': 'application/json' },
      body: Buffer.alloc(bytes + 1, 0x20),
    });
    expect(res.status).toBe(413);
  });
});
