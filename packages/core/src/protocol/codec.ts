import { Packr } from 'msgpackr';
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './decodeLimits.js';
import { MESSAGE_TYPES, type Message, messageSchema } from './messages.js';
import { ProtocolError } from './protocolError.js';
import { scanMessagePack } from './scanMessagePack.js';

// Plain MessagePack that any implementation reads: maps with string keys, no msgpackr
// records, bundled strings or extension types; absent optional fields are left out.
const packrOptions = {
  useRecords: false,
  mapsAsObjects: true,
  variableMapSize: true,
  moreTypes: false,
  structuredClone: false,
  bundleStrings: false,
  sequential: false,
  useToJSON: false,
  skipValues: [undefined],
  maxSharedStructures: 0,
  // Integers beyond 2^53 decode as bigint, which validation then rejects, instead of
  // silently losing precision.
  int64AsType: 'auto',
  // Decoded binaries are copies: a small hash must not keep a whole frame alive.
  copyBuffers: true,
};
// (`skipValues` and `'auto'` are supported at run time; msgpackr's typings lag behind.)
const packr = new Packr(packrOptions as ConstructorParameters<typeof Packr>[0]);

const KNOWN_TYPES = new Set<string>(MESSAGE_TYPES);

/** Encodes one message as a MessagePack frame. */
export function encodeMessage(message: Message): Uint8Array {
  return packr.pack(message);
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
  const result = messageSchema.safeParse(decoded);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.length > 0 ? issue.path.join('.') : '(message)';
    throw new ProtocolError('INVALID_MESSAGE', `${type}: ${path}: ${issue.message}`);
  }
  return result.data;
}
