import { writeMessagePack } from './messagePackWriter.js';
import type { Message } from './messages.js';

/**
 * Encodes one message as a MessagePack frame, in memory of its own (a frame waiting in a slow
 * reader's send queue keeps nothing else alive).
 */
export function encodeMessage(message: Message): Uint8Array {
  return writeMessagePack(message);
}
