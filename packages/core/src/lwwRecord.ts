import { describeValue } from './describeValue.js';
import { ValidationError } from './errors.js';
import { encodeValue } from './protocol/valueCodec.js';
import { compareTimestamps, type Timestamp, validateTimestamp } from './timestamp.js';
import { type Value, validateValue } from './value.js';

/**
 * One version of one key in an LWW map: a value, or a tombstone (`value: null`), stamped
 * with the HLC timestamp of the write that produced it.
 */
export interface LWWRecord<V> {
  /** The written value, or `null` for a tombstone (the key was deleted). */
  readonly value: V | null;
  /** When, and by which node, the record was written. */
  readonly timestamp: Timestamp;
  /**
   * Time to live in milliseconds, counted from `timestamp.millis`. Once
   * `timestamp.millis + ttlMs <= now`, the record reads as absent. Absent: never expires.
   */
  readonly ttlMs?: number;
}

/**
 * The Last-Write-Wins order between two versions of one key: positive when `a` wins.
 * Later timestamp wins; on equal timestamps (a record delivered again, or a misbehaving writer) a
 * tombstone beats a value, then the value whose canonical encoding (`encodeValue`) is
 * greater byte by byte wins (a proper prefix is smaller), then the greater TTL (no TTL
 * counting as smallest). Every replica, and the server's SQL, resolve every tie the same way.
 */
export function compareRecords<V>(a: LWWRecord<V>, b: LWWRecord<V>): number {
  const byTime = compareTimestamps(a.timestamp, b.timestamp);
  if (byTime !== 0) return byTime;
  if (a.value === null || b.value === null) {
    if (a.value !== null) return -1;
    if (b.value !== null) return 1;
  } else if (!sameEncoding(a.value, b.value)) {
    const byValue = compareBytes(
      encodeValue(a.value as unknown as Value),
      encodeValue(b.value as unknown as Value),
    );
    if (byValue !== 0) return byValue;
  }
  return (a.ttlMs ?? -1) - (b.ttlMs ?? -1);
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

/** Whether a record is a tombstone or has expired at physical time `now`. */
export function isRecordAbsent<V>(record: LWWRecord<V>, now: number): boolean {
  return (
    record.value === null ||
    (record.ttlMs !== undefined && record.timestamp.millis + record.ttlMs <= now)
  );
}

/**
 * Checks a record that came from outside (another replica, storage, the network).
 * @throws {ValidationError} naming the malformed field.
 */
export function validateRecord<V>(record: unknown, path = 'record'): LWWRecord<V> {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    throw new ValidationError(path, `expected a record object, got ${describeValue(record)}`);
  }
  const { value, timestamp, ttlMs } = record as Record<string, unknown>;
  validateTimestamp(timestamp, `${path}.timestamp`);
  if (value !== null) validateValue(value, `${path}.value`);
  if (ttlMs !== undefined) validateTtl(ttlMs, `${path}.ttlMs`);
  return record as LWWRecord<V>;
}

/** Checks a TTL: a positive integer number of milliseconds. */
export function validateTtl(ttlMs: unknown, path = 'ttlMs'): number {
  if (
    typeof ttlMs !== 'number' ||
    !Number.isInteger(ttlMs) ||
    ttlMs <= 0 ||
    ttlMs > Number.MAX_SAFE_INTEGER
  ) {
    throw new ValidationError(
      path,
      `expected a positive integer of milliseconds, got ${describeValue(ttlMs)}`,
    );
  }
  return ttlMs;
}
