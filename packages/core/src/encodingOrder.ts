import { writeMessagePack } from './protocol/messagePackWriter.js';
import type { Value } from './value.js';

/** The byte order of two values' canonical encodings (`encodeValue`). */
export function compareValueEncodings(a: Value, b: Value): number {
  return sameEncoding(a, b) ? 0 : compareBytes(writeMessagePack(a), writeMessagePack(b));
}

/**
 * Whether two values certainly encode to the same bytes: the same keys in the same order and
 * the same leaves (`0` and `-0` encode alike). The usual tie is a record delivered again,
 * compared this way without encoding either copy; false only means "encode and see".
 */
function sameEncoding(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (!a || !b || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(b);
  let index = 0;
  for (const key in a) {
    if (key !== keys[index++]) return false;
    if (!sameEncoding((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]))
      return false;
  }
  return index === keys.length;
}

/** Byte-wise order of two byte strings, a proper prefix first (PostgreSQL's `bytea` order). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index++) {
    if (a[index] !== b[index]) return a[index]! - b[index]!;
  }
  return a.length - b.length;
}
