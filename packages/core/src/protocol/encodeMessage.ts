import { writeMessagePack } from './messagePackWriter.js';
import type { Message } from './messages.js';

/**
 * Encodes one message as a MessagePack frame, in memory of its own (a frame waiting in a slow
 * reader's send queue keeps nothing else alive).
 */
export const encodeMessage: (message: Message) => Uint8Array = writeMessagePack;
