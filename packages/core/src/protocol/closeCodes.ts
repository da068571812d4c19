/** Close code of a protocol error: no `hello` first, or another protocol version. */
export const CLOSE_PROTOCOL_ERROR = 1002;
/**
 * Close code of a failed authentication, or of a session whose token expired: reconnect with a
 * fresh token.
 */
export const CLOSE_UNAUTHORIZED = 4401;
/** Close code of a node id that belongs to another user. */
export const CLOSE_FORBIDDEN = 4403;

/**
 * WebSocket close codes of the protocol (`specifications/protocol.md`): what a server closes
 * a connection with, and what a client reads to decide whether and when to reconnect. The
 * codes a client acts on are also exported alone, so that a client's bundle need not carry
 * the table.
 */
// Marked pure: a bundler must otherwise keep any call, and so the table, even where unused.
export const CLOSE_CODES = /* @__PURE__ */ Object.freeze({
  /** The server is shutting down: reconnect (elsewhere or later). */
  goingAway: 1001,
  /** {@link CLOSE_PROTOCOL_ERROR} */
  protocolError: CLOSE_PROTOCOL_ERROR,
  /** Repeated violations of the protocol or its limits. */
  policyViolation: 1008,
  /** A frame over the size limit. */
  messageTooBig: 1009,
  /**
   * The server cannot serve the connection now (its storage is unavailable, or it lost track
   * of other processes' commits): retry later, and walk again.
   */
  tryAgainLater: 1013,
  /** No `hello` within the handshake timeout. */
  handshakeTimeout: 4400,
  /** {@link CLOSE_UNAUTHORIZED} */
  unauthorized: CLOSE_UNAUTHORIZED,
  /** {@link CLOSE_FORBIDDEN} */
  forbidden: CLOSE_FORBIDDEN,
  /** The client read too slowly: the server would have had to buffer without bound. */
  slowConsumer: 4408,
});
