/**
 * What the client does differently on Node; browsers get `websocket-browser.ts` instead (package.json `browser`
 * field). How the stream opens its WebSocket: the injected constructor, the global one (browsers, Node ≥ 22), or
 * the `ws` package imported lazily on Node 20; the SDK key travels in an Authorization header (only `ws` can send
 * one) or in `Sec-WebSocket-Protocol`. And the pattern engine a client uses when its options name none.
 */
import { lazyDfa } from './core/operators/pattern-dfa.js';
import type { PatternEngine } from './core/operators/pattern.js';
import { STREAM_PROTOCOL } from './protocol.js';
import type { WebSocketConstructor } from './stream-client.js';
import { keyInSubprotocol, type WebSocketFactory, type WebSocketOptions } from './websocket-browser.js';

export type { WebSocketFactory, WebSocketOptions };

/**
 * On Node, `matches` runs on the lazy DFA unless `ClientOptions.patternEngine` says otherwise, whatever the
 * WebSocket (the browser build leaves the DFA out: there the default is the Pike VM alone).
 */
export const defaultPatternEngine: PatternEngine | undefined = lazyDfa;

export async function webSocketFactory(options: WebSocketOptions): Promise<WebSocketFactory> {
  const auth = options.webSocketAuth;
  let ctor = options.WebSocket;
  let header = auth === 'header';
  if (ctor === undefined) {
    ctor = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (ctor === undefined || header) {
      // A variable specifier keeps bundlers from pulling `ws` into a browser build.
      const specifier = 'ws';
      ctor = ((await import(/* @vite-ignore */ specifier)) as { WebSocket: WebSocketConstructor }).WebSocket;
      header = auth !== 'protocol';
    }
  }
  const withHeader: WebSocketConstructor = ctor;
  return header
    ? (url) => new withHeader(url, [STREAM_PROTOCOL], { headers: { authorization: `Bearer ${options.sdkKey}` }, perMessageDeflate: false })
    : keyInSubprotocol(ctor, options.sdkKey);
}
