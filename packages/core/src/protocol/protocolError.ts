import { TopGunError } from '../errors.js';

/** Why a frame was refused. */
export type ProtocolErrorReason =
  /** Larger than the frame limit. */
  | 'FRAME_TOO_LARGE'
  /** Not one well-formed MessagePack value (truncated, trailing bytes, invalid bytes). */
  | 'MALFORMED'
  /** Over a decoding limit: nesting depth, array or map size, string or binary length. */
  | 'LIMIT'
  /** An object key that could reach prototypes (`__proto__`, `constructor`, `prototype`) or a non-string key. */
  | 'FORBIDDEN_KEY'
  /** A MessagePack extension type; the protocol uses none. */
  | 'EXTENSION'
  /** A `type` the protocol does not define. */
  | 'UNKNOWN_TYPE'
  /** A known message whose fields are missing, extra or of the wrong type. */
  | 'INVALID_MESSAGE';

/**
 * Thrown by `decodeMessage` for any frame that is not a valid protocol message. Decoding
 * never throws anything else.
 */
export class ProtocolError extends TopGunError {
  /** Why the frame was refused. */
  readonly reason: ProtocolErrorReason;

  constructor(reason: ProtocolErrorReason, message: string) {
    super('PROTOCOL', message);
    this.reason = reason;
  }
}
