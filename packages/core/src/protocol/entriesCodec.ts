import { ValidationError } from '../errors.js';
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './decodeLimits.js';
import { readMessagePack } from './messagePackReader.js';
import { writeMessagePack } from './messagePackWriter.js';
import type { WireEntry } from './messages.js';

// How clients store records. Apart from `valueCodec.ts` (how servers store values), whose
// decoder and limits a client's bundle would otherwise carry.

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
export const encodeEntries: (entries: readonly WireEntry[]) => Uint8Array = writeMessagePack;

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
