import type { Connection, ConnectionEvents, Transport } from './transport.js';

/** How long a connection opened early waits to be taken before it is closed. */
const EARLY_CONNECTION_MS = 5_000;

/** A transport whose first connection was opened before anyone asked for it. */
export interface EarlyTransport extends Transport {
  /** Closes the early connection unless it was taken (this tab will not connect). */
  discard(): void;
}

/**
 * Opens a connection to `url` now, while the tab still waits to learn whether it leads
 * (an election that can take a fresh browser profile 100 ms), so that the socket's
 * handshake overlaps the wait. The first `connect` to `url` takes it over, with what it
 * reported so far replayed; it is closed unless taken within 5 s (a server closes a socket
 * that says no hello for 10 s). It carries nothing of the protocol until taken: the hello
 * is sent by whoever takes it.
 */
export function connectEarly(transport: Transport, url: string): EarlyTransport {
  let events: ConnectionEvents | undefined;
  const missed: Array<(to: ConnectionEvents) => void> = [];
  const early: Connection | undefined = (() => {
    try {
      return transport.connect(url, {
        open: () => deliver((to) => to.open()),
        frame: (data) => deliver((to) => to.frame(data)),
        close: (code, reason) => {
          // Closed before anyone took it: the first connect opens a new one at once.
          if (waiting === undefined) deliver((to) => to.close(code, reason));
          else {
            missed.length = 0;
            discard();
          }
        },
      });
    } catch {
      // The connect that asks for it tries again and reports why.
      return undefined;
    }
  })();
  let waiting = early;
  const timer = setTimeout(() => discard(), EARLY_CONNECTION_MS);
  function deliver(event: (to: ConnectionEvents) => void): void {
    if (events === undefined) missed.push(event);
    else event(events);
  }
  function discard(): void {
    clearTimeout(timer);
    waiting?.close();
    waiting = undefined;
  }
  return {
    connect(to: string, handlers: ConnectionEvents): Connection {
      const taken = waiting;
      if (taken === undefined || to !== url) {
        discard();
        return transport.connect(to, handlers);
      }
      waiting = undefined;
      clearTimeout(timer);
      // Reported later than this call, never from within it.
      queueMicrotask(() => {
        events = handlers;
        for (const event of missed.splice(0)) event(handlers);
      });
      return taken;
    },
    discard,
  };
}
