import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './decodeLimits.js';
import { checkFrame, invalidMessage, typeOfMessage } from './frameChecks.js';
import { issueMessage } from './issueMessage.js';
import { MESSAGE_TYPES, type Message, messageSchema } from './messages.js';
import { packr } from './packr.js';
import { ProtocolError } from './protocolError.js';
import { scanMessagePack } from './scanMessagePack.js';

const KNOWN_TYPES = new Set<string>(MESSAGE_TYPES);
const isKnownType = (type: string): type is Message['type'] => KNOWN_TYPES.has(type);

/**
 * Decodes and validates one frame. Throws only `ProtocolError`: for a frame over the size
 * limit, truncated or random bytes, trailing bytes, extension types, forbidden or non-string
 * keys, oversized arrays, maps, strings or binaries, deep nesting, an unknown `type`, or
 * fields of a wrong type. Nothing is built before the bytes pass a bounded scan, so a hostile
 * frame can neither hang the decoder nor touch a prototype. This is the server's decoder,
 * with msgpackr (faster in Node) and zod (whose errors say the most); clients use
 * `decodeServerMessage`, which checks the same with less code.
 */
export function decodeMessage(
  frame: Uint8Array,
  limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
): Message {
  checkFrame(frame, limits);
  scanMessagePack(frame, limits);
  let decoded: unknown;
  try {
    decoded = packr.unpack(frame);
  } catch (error) {
    throw new ProtocolError('MALFORMED', `not valid MessagePack: ${(error as Error).message}`);
  }
  const type = typeOfMessage(decoded, isKnownType);
  const result = messageSchema.safeParse(decoded, { error: issueMessage });
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw invalidMessage(type, issue.path, issue.message);
  }
  return result.data;
}
