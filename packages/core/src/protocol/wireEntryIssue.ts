import { isValidKey } from '../recordKey.js';
import { isSerializedTimestamp } from '../timestamp.js';
import { validateValue } from '../value.js';
import { KEY_ISSUE } from './messageFields.js';

/** Where inside a message something is wrong, and what. */
export interface Issue {
  readonly path: PropertyKey[];
  readonly message: string;
}

const TTL_ISSUE = 'expected a TTL: a whole number of milliseconds, at least 1';

/**
 * What is wrong with a candidate wire entry `[key, timestamp, value, ttlMs?]`, or with field
 * writes `[key, timestamp or nil, value, ttlMs or nil, fields]` (and where inside it), if
 * anything. The most frequent element of the protocol, so it is checked by one function
 * rather than composed schemas, which allocate several times more per entry.
 */
export function wireEntryIssue(entry: unknown): Issue | undefined {
  if (!Array.isArray(entry) || entry.length < 3 || entry.length > 5) {
    return {
      path: [],
      message: 'expected [key, timestamp, value, ttlMs?] or [key, timestamp, value, ttlMs, fields]',
    };
  }
  const [key, timestamp, value, ttlMs, fields] = entry as unknown[];
  if (typeof key !== 'string' || !isValidKey(key)) {
    return { path: [0], message: KEY_ISSUE };
  }
  const fielded = entry.length === 5;
  // With field writes, nil stands for the empty write: no value, no TTL.
  const empty = fielded && timestamp === null;
  if (!empty && !isSerializedTimestamp(timestamp)) {
    return { path: [1], message: 'expected a serialized timestamp' };
  }
  if (value !== null) {
    if (empty) return { path: [2], message: 'expected nil: field writes alone have no value' };
    try {
      validateValue(value);
    } catch (error) {
      return { path: [2], message: (error as Error).message };
    }
  }
  if (entry.length >= 4 && !(fielded && ttlMs === null) && !isTtl(ttlMs)) {
    return { path: [3], message: fielded ? `${TTL_ISSUE}, or nil` : TTL_ISSUE };
  }
  if (empty && ttlMs !== null) {
    return { path: [3], message: 'expected nil: field writes alone have no TTL' };
  }
  return fielded ? fieldWritesIssue(fields) : undefined;
}

function isTtl(ttlMs: unknown): boolean {
  return typeof ttlMs === 'number' && Number.isSafeInteger(ttlMs) && ttlMs >= 1;
}

/** What is wrong with an entry's field writes `{ name: [timestamp, value?] }`, if anything. */
function fieldWritesIssue(fields: unknown): Issue | undefined {
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
    return { path: [4], message: 'expected field writes: a map of name to [timestamp, value?]' };
  }
  let count = 0;
  for (const name in fields) {
    count++;
    const write = (fields as Record<string, unknown>)[name];
    if (!Array.isArray(write) || write.length < 1 || write.length > 2) {
      return { path: [4, name], message: 'expected [timestamp, value?]' };
    }
    if (!isSerializedTimestamp(write[0])) {
      return { path: [4, name, 0], message: 'expected a serialized timestamp' };
    }
    try {
      // The name is checked as a field of a value (no `__proto__`, no lone surrogate), a
      // removal's too; nil stands in for a removal's value.
      validateValue({ [name]: write.length === 2 ? write[1] : null });
    } catch (error) {
      return { path: [4, name], message: (error as Error).message };
    }
  }
  if (count === 0) return { path: [4], message: 'expected at least one field write' };
  return undefined;
}
