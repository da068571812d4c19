import { isObject } from '../fieldWrites.js';
import { isIntegerIn } from '../isIntegerIn.js';
import { isValidKey } from '../recordKey.js';
import { isSerializedTimestamp } from '../timestamp.js';
import { validateValue } from '../value.js';
import { KEY_ISSUE, TTL_ISSUE } from './messageFields.js';

/** Where inside a message something is wrong, and what. */
export interface Issue {
  readonly path: PropertyKey[];
  readonly message: string;
}

const issue = (path: PropertyKey[], message: string): Issue => ({ path, message });

/** What is wrong with a candidate value at `path`, if anything. */
function valueIssue(value: unknown, path: PropertyKey[]): Issue | undefined {
  try {
    validateValue(value);
    return undefined;
  } catch (error) {
    return issue(path, (error as Error).message);
  }
}

/**
 * What is wrong with a candidate wire entry `[key, timestamp, value, ttlMs?]`, or with field
 * writes `[key, timestamp or nil, value, ttlMs or nil, fields]` (and where inside it), if
 * anything. The most frequent element of the protocol, so it is checked by one function
 * rather than composed schemas, which allocate several times more per entry.
 */
export function wireEntryIssue(entry: unknown): Issue | undefined {
  const length = Array.isArray(entry) ? entry.length : 0;
  if (length < 3 || length > 5) {
    return issue([], 'expected [key, timestamp, value, ttlMs?, fields?]');
  }
  const [key, timestamp, value, ttlMs, fields] = entry as unknown[];
  if (typeof key !== 'string' || !isValidKey(key)) return issue([0], KEY_ISSUE);
  // With field writes, nil stands for the empty write: no value, no TTL either.
  const empty = length === 5 && timestamp === null;
  if (!empty && !isSerializedTimestamp(timestamp)) {
    return issue([1], 'expected a serialized timestamp');
  }
  if (empty && (value !== null || ttlMs !== null)) {
    return issue([value !== null ? 2 : 3], 'expected nil after a nil timestamp');
  }
  if (value !== null) {
    const found = valueIssue(value, [2]);
    if (found !== undefined) return found;
  }
  if (
    length > 3 &&
    !(length === 5 && ttlMs === null) &&
    !isIntegerIn(ttlMs, 1, Number.MAX_SAFE_INTEGER)
  ) {
    return issue([3], TTL_ISSUE);
  }
  return length === 5 ? fieldWritesIssue(fields) : undefined;
}

/** What is wrong with an entry's field writes `{ name: [timestamp, value?] }`, if anything. */
function fieldWritesIssue(fields: unknown): Issue | undefined {
  if (!isObject(fields)) return issue([4], 'expected field writes { name: [timestamp, value?] }');
  let count = 0;
  for (const name in fields) {
    count++;
    const write = fields[name];
    if (!Array.isArray(write) || write.length < 1 || write.length > 2) {
      return issue([4, name], 'expected [timestamp, value?]');
    }
    if (!isSerializedTimestamp(write[0])) {
      return issue([4, name, 0], 'expected a serialized timestamp');
    }
    // The name is checked as a field of a value (no `__proto__`, no lone surrogate), a
    // removal's too; nil stands in for a removal's value.
    const found = valueIssue({ [name]: write.length === 2 ? write[1] : null }, [4, name]);
    if (found !== undefined) return found;
  }
  return count === 0 ? issue([4], 'expected at least one field write') : undefined;
}
