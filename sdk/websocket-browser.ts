/**
 * What the client does differently in a browser; the browser bundle uses this module in place of `websocket.ts`
 * (package.json `browser` field), which adds what only Node needs. The stream opens the injected WebSocket
 * constructor or the global one, with the SDK key in `Sec-WebSocket-Protocol` (browsers cannot set headers on a
 * WebSocket).
 */
import type { PatternEngine } from './core/operators/pattern.js';
import { KEY_PROTOCOL_PREFIX, STREAM_PROTOCOL } from './protocol.js';
import type { WebSocketConstructor, WebSocketLike } from './stream-client.js';

/**
 * In a browser `matches` runs on the Pike VM alone unless `ClientOptions.patternEngine` names an engine (the lazy
 * DFA would add about 0.7 KB gzipped to the bundle).
 */
export const defaultPatternEngine: PatternEngine | undefined = undefined;

/** Opens a stream connection to `url`. */
export type WebSocketFactory = (url: string) => WebSocketLike;

/** What the client's options say about the WebSocket. */
export interface WebSocketOptions {
  sdkKey: string;
  WebSocket?: WebSocketConstructor;
  webSocketAuth?: 'header' | 'protocol';
}

/** Connections made with `ctor` that carry the key as a subprotocol beside the stream's own. */
export function keyInSubprotocol(ctor: WebSocketConstructor, sdkKey: string): WebSocketFactory {
  return (url) => new ctor(url, [STREAM_PROTOCOL, KEY_PROTOCOL_PREFIX + sdkKey]);
}

export async function webSocketFactory(options: WebSocketOptions): Promise<WebSocketFactory> {
  const ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (ctor === undefined) throw new Error('no global WebSocket');
  return keyInSubprotocol(ctor, options.sdkKey);
}
