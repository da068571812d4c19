/**
 * WebSocket close codes of the protocol (`specifications/protocol.md`): what a server closes
 * a connection with, and what a client reads to decide whether and when to reconnect.
 */
export const CLOSE_CODES = Object.freeze({
  /** The server is shutting down: reconnect (elsewhere or later). */
  goingAway: 1001,
  /** A protocol error: no `hello` first, or another protocol version. */
  protocolError: 1002,
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
  /** Authentication failed, or the session's token expired: reconnect with a fresh token. */
  unauthorized: 4401,
  /** The node id belongs to another user. */
  forbidden: 4403,
  /** The client read too slowly: the server would have had to buffer without bound. */
  slowConsumer: 4408,
});
