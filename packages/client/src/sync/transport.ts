/**
 * How the sync engine reaches a server: it opens connections and exchanges binary frames
 * (encoded protocol messages) over them. `webSocketTransport` is the default; tests and
 * other carriers implement the same two interfaces.
 */
export interface Transport {
  /**
   * Opens a connection to `url` and reports what happens to it through `events`.
   * @throws when the connection cannot even be attempted (a malformed URL); the engine then
   *   reports it and retries later.
   */
  connect(url: string, events: ConnectionEvents): Connection;
}

/** One open (or opening) connection. */
export interface Connection {
  /** Sends one frame; dropped when the connection is not open (yet, or any more). */
  send(frame: Uint8Array): void;
  /** Closes the connection; no event is reported after this. */
  close(): void;
}

/**
 * What a connection reports, in this order: `open`, any number of `frame`s, one `close`;
 * always later than the `connect` call that returned the connection, never from within it.
 */
export interface ConnectionEvents {
  /** The connection is open: frames can be sent. */
  open(): void;
  /** A frame arrived from the server. */
  frame(data: Uint8Array): void;
  /**
   * The connection ended (the server closed it, the network failed, it never opened), with
   * the WebSocket close code and reason.
   */
  close(code: number, reason: string): void;
}
