/**
 * How the stream opens its WebSocket: the injected constructor, the global one (browsers, Node ≥ 22), or the `ws`
 * package imported lazily on Node 20; the SDK key travels in an Authorization header (only `ws` can send one) or in
 * `Sec-WebSocket-Protocol`. Browsers get `websocket-browser.ts` instead (package.json `browser` field).
 */
import { STREAM_PROTOCOL } from './protocol.js';
import type { WebSocketConstructor } from './stream-client.js';
import { keyInSubprotocol, type WebSocketFactory, type WebSocketOptions } from './websocket-browser.js';

export type { WebSocketFactory, WebSocketOptions };

export async function webSocketFactory(options: WebSocketOptions): Promise<WebSocketFactory> {
  const auth = options.webSocketAuth;
  let ctor = options.WebSocket;
  let header = auth === 'header';
  if (ctor === undefined) {
    ctor = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (ctor === undefined || header) {
      // A variable specifier keeps bundlers from pulling `ws` into a browser build.
      const specifier = 'ws';
      // On Node, also the lazy DFA that speeds up `matches` (same answers as the Pike VM the browser build keeps),
      // so that patterns in the snapshot about to arrive are compiled with it. Optional: the Pike VM is always there.
      const dfa = './core/operators/pattern-dfa.js';
      await import(/* @vite-ignore */ dfa).catch(() => undefined);
      ctor = ((await import(/* @vite-ignore */ specifier)) as { WebSocket: WebSocketConstructor }).WebSocket;
      header = auth !== 'protocol';
    }
  }
  const withHeader: WebSocketConstructor = ctor;
  return header
    ? (url) => new withHeader(url, [STREAM_PROTOCOL], { headers: { authorization: `Bearer ${options.sdkKey}` }, perMessageDeflate: false })
    : keyInSubprotocol(ctor, options.sdkKey);
}
