import { ValidationError } from '../errors.js';
import type { Value } from '../value.js';
import { validateValue } from '../value.js';
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './decodeLimits.js';
import { readMessagePack } from './messagePackReader.js';
import { writeMessagePack } from './messagePackWriter.js';
import type { WireEntry } from './messages.js';
import { packr } from './packr.js';
import { ProtocolError } from './protocolError.js';
import { scanMessagePack } from './scanMessagePack.js';

/** Encodes a record value as MessagePack, the form servers store it in (bytea). */
export function encodeValue(value: Value): Uint8Array {
  return writeMessagePack(value);
}

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

const STORED_ENTRIES_LIMITS: DecodeLimits = {
  ...DEFAULT_DECODE_LIMITS,
  maxFrameBytes: 256 * 1024 * 1024,
  maxArrayLength: 10_000_000,
  maxElements: Number.MAX_SAFE_INTEGER,
  maxStringBytes: 16 * 1024 * 1024,
};

/**
 * Encodes records in their wire form (`[key, timestamp, value, ttlMs?, fields?]`) as one MessagePack
 * array: how clients store a bucket of records as a single binary value.
 */
export function encodeEntries(entries: readonly WireEntry[]): Uint8Array {
  return writeMessagePack(entries);
}

/**
 * Decodes what {@link encodeEntries} produced. The structure is checked; records are
 * validated when they are merged into a replica. Clients read their stored records with it,
 * so it decodes with core's own decoder, which keeps msgpackr out of a browser bundle.
 * @throws {ValidationError} when the bytes are not a list of entries.
 */
export function decodeEntries(bytes: Uint8Array): WireEntry[] {
  let decoded: unknown;
  try {
    decoded = readMessagePack(bytes, STORED_ENTRIES_LIMITS);
  } catch (error) {
    throw new ValidationError('stored entries', `cannot be decoded: ${(error as Error).message}`);
  }
  if (!Array.isArray(decoded)) throw new ValidationError('stored entries', 'expected an array');
  for (const entry of decoded) {
    if (
      !Array.isArray(entry) ||
      typeof entry[0] !== 'string' ||
      (typeof entry[1] !== 'string' && !(entry[1] === null && entry.length === 5))
    ) {
      throw new ValidationError(
        'stored entries',
        'expected [key, timestamp, value, ttlMs?, fields?] entries',
      );
    }
  }
  return decoded as WireEntry[];
}
