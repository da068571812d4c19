import type { DecodeLimits } from './decodeLimits.js';
import { ProtocolError } from './protocolError.js';

/**
 * The checks of a frame before it is decoded: binary, not empty, within the size limit.
 * @throws {ProtocolError}
 */
export function checkFrame(frame: Uint8Array, limits: DecodeLimits): void {
  if (!(frame instanceof Uint8Array)) {
    throw new ProtocolError('MALFORMED', 'expected a binary frame');
  }
  if (frame.length > limits.maxFrameBytes) {
    throw new ProtocolError(
      'FRAME_TOO_LARGE',
      `a frame of ${frame.length} bytes exceeds the limit of ${limits.maxFrameBytes}`,
    );
  }
  if (frame.length === 0) throw new ProtocolError('MALFORMED', 'the frame is empty');
}

/**
 * The `type` of a decoded message, if `isKnown` accepts it.
 * @throws {ProtocolError} `UNKNOWN_TYPE` otherwise.
 */
export function typeOfMessage<T extends string>(
  decoded: unknown,
  isKnown: (type: string) => type is T,
): T {
  const type =
    typeof decoded === 'object' && decoded !== null
      ? (decoded as { type?: unknown }).type
      : undefined;
  if (typeof type !== 'string' || !isKnown(type)) {
    throw new ProtocolError(
      'UNKNOWN_TYPE',
      `unknown message type ${typeof type === 'string' ? JSON.stringify(type.slice(0, 40)) : String(typeof type)}`,
    );
  }
  return type;
}

/** The text of an invalid message's error: its type, where the problem is, and what it is. */
export function invalidMessage(
  type: string,
  path: readonly PropertyKey[],
  message: string,
): ProtocolError {
  const at = path.length > 0 ? path.map(String).join('.') : '(message)';
  return new ProtocolError('INVALID_MESSAGE', `${type}: ${at}: ${message}`);
}
