import type { Connection, ConnectionEvents, Transport } from './transport.js';

/** A WebSocket constructor (the browser's, or `ws` in Node). */
export type WebSocketConstructor = new (url: string) => WebSocket;

/**
 * The default transport: one WebSocket per connection, binary frames only.
 * @param WebSocketImpl The WebSocket class. Default: the global one, else the `ws` package
 *   (loaded on first use; left out of browser bundles).
 */
export function webSocketTransport(WebSocketImpl?: WebSocketConstructor): Transport {
  let Socket: WebSocketConstructor | Promise<WebSocketConstructor> | undefined = WebSocketImpl;
  return {
    connect(url: string, events: ConnectionEvents): Connection {
      Socket ??= webSocketConstructor();
      let socket: WebSocket | undefined;
      let closed = false;
      const fail = (reason: string) => {
        if (closed) return;
        closed = true;
        events.close(1006, reason);
      };
      const open = (Impl: WebSocketConstructor) => {
        if (closed) return;
        socket = new Impl(url);
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
      };
      if (typeof Socket === 'function') {
        open(Socket);
      } else {
        Socket.then(
          (Impl) => {
            Socket = Impl;
            try {
              open(Impl);
            } catch (error) {
              fail(`cannot connect to ${url}: ${(error as Error).message}`);
            }
          },
          (error: unknown) => fail(`no WebSocket implementation: ${(error as Error).message}`),
        );
      }
      return {
        send(frame) {
          if (socket?.readyState === 1) socket.send(frame as Uint8Array<ArrayBuffer>);
        },
        close() {
          closed = true;
          if (socket === undefined) return;
          socket.onclose = null;
          socket.onmessage = null;
          socket.onopen = null;
          socket.close();
        },
      };
    },
  };
}

async function webSocketConstructor(): Promise<WebSocketConstructor> {
  const native = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (native !== undefined) return native;
  // Node before 22 has no WebSocket: use the `ws` package (excluded from browser bundles).
  const module = await import('ws');
  return module.default as unknown as WebSocketConstructor;
}
