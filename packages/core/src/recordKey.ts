import { describeValue } from './describeValue.js';
import { ValidationError } from './errors.js';
import { utf8Bytes } from './utf8Bytes.js';

/**
 * Longest record key, in UTF-8 bytes: what PostgreSQL can keep in its primary-key index
 * (with the map name) whatever characters the key uses.
 */
export const MAX_KEY_BYTES = 1024;

/** Whether `key` is a valid record key; see {@link validateKey}. */
export function isValidKey(key: unknown): key is string {
  // At most 3 UTF-8 bytes per UTF-16 unit: only long keys need counting.
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_BYTES) return false;
  // PostgreSQL text and UTF-8 cannot hold NUL or unpaired surrogates.
  for (let i = 0; i < key.length; i++) {
    const unit = key.charCodeAt(i);
    if (unit === 0) return false;
    if ((unit & 0xf800) !== 0xd800) continue;
    if (unit >= 0xdc00) return false;
    const next = key.charCodeAt(i + 1);
    if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
    i++;
  }
  return key.length * 3 <= MAX_KEY_BYTES || utf8Bytes(key) <= MAX_KEY_BYTES;
}

/**
 * Checks a record key: a string of 1 to {@link MAX_KEY_BYTES} bytes in UTF-8, well-formed
 * (no lone surrogates) and without U+0000.
 * @throws {ValidationError} describing what is wrong.
 */
export function validateKey(key: unknown, path = 'key'): string {
  if (isValidKey(key)) return key;
  if (typeof key !== 'string') {
    throw new ValidationError(path, `expected a string, got ${describeValue(key)}`);
  }
  if (key.length === 0) throw new ValidationError(path, 'must not be empty');
  const bytes = utf8Bytes(key);
  if (bytes > MAX_KEY_BYTES) {
    throw new ValidationError(
      path,
      `is ${bytes} bytes long in UTF-8, the limit is ${MAX_KEY_BYTES}`,
    );
  }
  throw new ValidationError(path, 'must not contain U+0000 or unpaired surrogates');
}
