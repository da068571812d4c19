// Browser bundles map `ws` to nothing (package.json `browser`); browsers have their own.
import * as ws from 'ws';
import type { Connection, ConnectionEvents, Transport } from './transport.js';

/** A WebSocket constructor (the browser's, or `ws` in Node). */
export type WebSocketConstructor = new (url: string) => WebSocket;

/**
 * The default transport: one WebSocket per connection, binary frames only.
 * @param WebSocketImpl The WebSocket class. Default: the global one, else the `ws` package
 *   (left out of browser bundles).
 */
export function webSocketTransport(WebSocketImpl?: WebSocketConstructor): Transport {
  let Socket = WebSocketImpl;
  return {
    connect(url: string, events: ConnectionEvents): Connection {
      // Throws (a bad URL, no WebSocket at all): the caller reports the connection failed.
      Socket ??= webSocketConstructor();
      let closed = false;
      const socket = new Socket(url);
      socket.binaryType = 'arraybuffer';
      socket.onopen = () => events.open();
      socket.onmessage = (event) => {
        // Text frames are not part of the protocol.
        if (event.data instanceof ArrayBuffer) events.frame(new Uint8Array(event.data));
      };
      socket.onclose = (event) => {
        closed = true;
        events.close(event.code, event.reason);
      };
      socket.onerror = () => {
        // onclose follows with the details
      };
      return {
        send(frame) {
          if (socket.readyState === 1) socket.send(frame as Uint8Array<ArrayBuffer>);
        },
        close() {
          if (closed) return;
          closed = true;
          socket.onclose = null;
          socket.onmessage = null;
          socket.onopen = null;
          socket.close();
        },
      };
    },
  };
}

function webSocketConstructor(): WebSocketConstructor {
  const native = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (native !== undefined) return native;
  // Node before 22 has no WebSocket.
  const Impl = (ws as { default?: unknown }).default;
  if (typeof Impl !== 'function') throw new Error('no WebSocket implementation (install `ws`)');
  return Impl as WebSocketConstructor;
}
