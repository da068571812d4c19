import { isValidKey } from '../recordKey.js';
import { isSerializedTimestamp } from '../timestamp.js';
import { validateValue } from '../value.js';
import { KEY_ISSUE } from './messageFields.js';

/** Where inside a message something is wrong, and what. */
export interface Issue {
  readonly path: PropertyKey[];
  readonly message: string;
}

/**
 * What is wrong with a candidate wire entry `[key, timestamp, value, ttlMs?]` (and where inside
 * it), if anything. The most frequent element of the protocol, so it is checked by one function
 * rather than composed schemas, which allocate several times more per entry.
 */
export function wireEntryIssue(entry: unknown): Issue | undefined {
  if (!Array.isArray(entry) || (entry.length !== 3 && entry.length !== 4)) {
    return { path: [], message: 'expected [key, timestamp, value, ttlMs?]' };
  }
  const [key, timestamp, value, ttlMs] = entry as unknown[];
  if (typeof key !== 'string' || !isValidKey(key)) {
    return { path: [0], message: KEY_ISSUE };
  }
  if (!isSerializedTimestamp(timestamp)) {
    return { path: [1], message: 'expected a serialized timestamp' };
  }
  if (value !== null) {
    try {
      validateValue(value);
    } catch (error) {
      return { path: [2], message: (error as Error).message };
    }
  }
  if (
    entry.length === 4 &&
    !(typeof ttlMs === 'number' && Number.isSafeInteger(ttlMs) && ttlMs >= 1)
  ) {
    return { path: [3], message: 'expected a TTL: a whole number of milliseconds, at least 1' };
  }
  return undefined;
}
