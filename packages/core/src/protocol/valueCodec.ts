import { ValidationError } from '../errors.js';
import type { Value } from '../value.js';
import { validateValue } from '../value.js';
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './decodeLimits.js';
import { writeMessagePack } from './messagePackWriter.js';
import { packr } from './packr.js';
import { ProtocolError } from './protocolError.js';
import { scanMessagePack } from './scanMessagePack.js';

/** Encodes a record value as MessagePack, the form servers store it in (bytea). */
export const encodeValue: (value: Value) => Uint8Array = writeMessagePack;

/**
 * Decodes a stored value and checks it, so that corrupted storage surfaces as an error
 * instead of bad data. Servers read values with it, so it decodes with msgpackr, faster in
 * Node than core's own decoder.
 * @throws {ValidationError} when the bytes are not a storable value.
 */
export function decodeValue(bytes: Uint8Array, limits: DecodeLimits = STORED_VALUE_LIMITS): Value {
  try {
    scanMessagePack(bytes, limits);
    const value = packr.unpack(bytes) as unknown;
    validateValue(value, 'stored value');
    return value as Value;
  } catch (error) {
    if (error instanceof ValidationError) throw error;
    const reason = error instanceof ProtocolError ? error.message : String(error);
    throw new ValidationError('stored value', `cannot be decoded: ${reason}`);
  }
}

// What was stored is read back even if it predates a tighter frame limit.
const STORED_VALUE_LIMITS: DecodeLimits = {
  ...DEFAULT_DECODE_LIMITS,
  maxFrameBytes: 16 * 1024 * 1024,
  maxElements: 16 * 1024 * 1024,
};
