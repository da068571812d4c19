import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './decodeLimits.js';
import { issueMessage } from './issueMessage.js';
import { MESSAGE_TYPES, type Message, messageSchema } from './messages.js';
import { packr } from './packr.js';
import { ProtocolError } from './protocolError.js';
import { scanMessagePack } from './scanMessagePack.js';

const KNOWN_TYPES = new Set<string>(MESSAGE_TYPES);

/**
 * Encodes one message as a MessagePack frame, in memory of its own: the encoder writes into
 * a shared buffer that grows with the largest message it ever encoded, and a frame left as
 * a view of it would keep all of it alive while it waits in a slow reader's send queue.
 */
export function encodeMessage(message: Message): Uint8Array {
  // A copy of the encoder's own kind (a Buffer in Node, which sockets send as is).
  return Uint8Array.prototype.slice.call(packr.pack(message));
}

/**
 * Decodes and validates one frame. Throws only `ProtocolError`: for a frame over the size
 * limit, truncated or random bytes, trailing bytes, extension types, forbidden or non-string
 * keys, oversized arrays, maps, strings or binaries, deep nesting, an unknown `type`, or
 * fields of a wrong type. Nothing is built before the bytes pass a bounded scan, so a hostile
 * frame can neither hang the decoder nor touch a prototype.
 */
export function decodeMessage(
  frame: Uint8Array,
  limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
): Message {
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
  scanMessagePack(frame, limits);
  let decoded: unknown;
  try {
    decoded = packr.unpack(frame);
  } catch (error) {
    throw new ProtocolError('MALFORMED', `not valid MessagePack: ${(error as Error).message}`);
  }
  const type =
    typeof decoded === 'object' && decoded !== null
      ? (decoded as { type?: unknown }).type
      : undefined;
  if (typeof type !== 'string' || !KNOWN_TYPES.has(type)) {
    throw new ProtocolError(
      'UNKNOWN_TYPE',
      `unknown message type ${typeof type === 'string' ? JSON.stringify(type.slice(0, 40)) : String(typeof type)}`,
    );
  }
  const result = messageSchema.safeParse(decoded, { error: issueMessage });
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.length > 0 ? issue.path.join('.') : '(message)';
    throw new ProtocolError('INVALID_MESSAGE', `${type}: ${path}: ${issue.message}`);
  }
  return result.data;
}
