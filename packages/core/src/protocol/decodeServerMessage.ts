import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './decodeLimits.js';
import { checkFrame, invalidMessage, typeOfMessage } from './frameChecks.js';
import { readMessagePack } from './messagePackReader.js';
import {
  isServerMessageType,
  type ServerMessage,
  serverMessageIssue,
} from './serverMessageChecks.js';

/**
 * The client's `decodeMessage`: decodes and validates one frame from a server, refusing the
 * types only clients send. It checks what `decodeMessage` checks, with the same reasons, but
 * with compact checks instead of zod and core's own MessagePack decoder instead of msgpackr,
 * which keeps both out of a browser bundle. Throws only `ProtocolError`.
 */
export function decodeServerMessage(
  frame: Uint8Array,
  limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
): ServerMessage {
  checkFrame(frame, limits);
  const decoded = readMessagePack(frame, limits);
  const type = typeOfMessage(decoded, isServerMessageType);
  const issue = serverMessageIssue(type, decoded);
  if (issue !== undefined) throw invalidMessage(type, issue.path, issue.message);
  return decoded as ServerMessage;
}
