import { describeValue } from './describeValue.js';
import { compareValueEncodings } from './encodingOrder.js';
import { ValidationError } from './errors.js';
import {
  compareFieldWrites,
  type FieldWrite,
  type FieldWrites,
  isEmptyWrite,
  isObject,
  validateFieldWrites,
  wholeWriteOf,
  withFieldWrites,
  withTtl,
} from './fieldWrites.js';
import { isIntegerIn } from './isIntegerIn.js';
import { TTL_ISSUE } from './protocol/messageFields.js';
import { compareTimestamps, type Timestamp, validateTimestamp } from './timestamp.js';
import { type Value, validateValue } from './value.js';

/**
 * What one key holds in an LWW map: its last whole write (a value, or a tombstone, stamped
 * with the HLC timestamp of the `set` or `delete` that made it) and the field writes
 * (`update`) made after it, if any (`specifications/data-model.md`).
 */
export interface LWWRecord<V> {
  /**
   * The record's value: the whole write's value with the field writes applied (when both are
   * plain objects), or `null` for a tombstone (the key was deleted).
   */
  readonly value: V | null;
  /** When, and by which node, the whole write was made. */
  readonly timestamp: Timestamp;
  /**
   * Time to live in milliseconds, counted from `timestamp.millis`. Once
   * `timestamp.millis + ttlMs <= now`, the record reads as absent. Absent: never expires.
   */
  readonly ttlMs?: number;
  /** Field writes later than the whole write, by field name; absent when there are none. */
  readonly fields?: FieldWrites;
  /** With `fields`: the whole write's own value, before the field writes. */
  readonly base?: V | null;
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
  // The whole writes' own values: field writes are ordered apart (compareFieldWrites).
  const aValue = a.fields === undefined ? a.value : (a.base ?? null);
  const bValue = b.fields === undefined ? b.value : (b.base ?? null);
  if (aValue === null || bValue === null) {
    if (aValue !== null) return -1;
    if (bValue !== null) return 1;
  } else {
    const byValue = compareValueEncodings(aValue as Value, bValue as Value);
    if (byValue !== 0) return byValue;
  }
  return (a.ttlMs ?? -1) - (b.ttlMs ?? -1);
}

/**
 * Merges two records of one key: the greater whole write, and for every field name the
 * greatest field write later than it. Returns `a` itself when merging `b` changes nothing,
 * and `b` itself when the result is `b`.
 */
export function mergeRecords<V>(a: LWWRecord<V>, b: LWWRecord<V>): LWWRecord<V> {
  const order = compareRecords(a, b);
  const winner = order >= 0 ? a : b;
  const loser = order >= 0 ? b : a;
  if (loser.fields === undefined) return winner;
  let merged: Record<string, FieldWrite> | undefined;
  for (const name in loser.fields) {
    const write = loser.fields[name]!;
    if (compareTimestamps(write.timestamp, winner.timestamp) <= 0) continue;
    const against = merged ?? winner.fields;
    const current =
      against !== undefined && Object.hasOwn(against, name) ? against[name] : undefined;
    if (current !== undefined && compareFieldWrites(write, current) <= 0) continue;
    merged ??= { ...winner.fields };
    merged[name] = write;
  }
  if (merged === undefined) return winner;
  // The same whole write, and `b` already held every field write kept: the result is `b`.
  if (order === 0 && b.fields !== undefined) {
    const names = Object.keys(merged);
    const held = b.fields;
    if (names.length === Object.keys(held).length && names.every((n) => held[n] === merged[n]))
      return b;
  }
  return withFieldWrites(wholeWriteOf(winner), merged);
}

/** Whether a record is a tombstone or has expired at physical time `now`. */
export function isRecordAbsent<V>(record: LWWRecord<V>, now: number): boolean {
  return (
    record.value === null ||
    (record.ttlMs !== undefined && record.timestamp.millis + record.ttlMs <= now)
  );
}

/**
 * Checks a record that came from outside (another replica, storage, the network); returns it,
 * or for a record with field writes, the same record with its value made again from them.
 * @throws {ValidationError} naming the malformed field.
 */
export function validateRecord<V>(record: unknown, path = 'record'): LWWRecord<V> {
  if (!isObject(record)) {
    throw new ValidationError(path, `expected a record object, got ${describeValue(record)}`);
  }
  const { value, timestamp, ttlMs, fields, base } = record as Record<string, unknown>;
  // Field writes alone have the empty write as whole write: no value, no TTL.
  const empty =
    fields !== undefined && isEmptyWrite(timestamp) && base == null && ttlMs === undefined;
  if (!empty) validateTimestamp(timestamp, `${path}.timestamp`);
  if (ttlMs !== undefined) validateTtl(ttlMs, `${path}.ttlMs`);
  if (fields === undefined) {
    if (value !== null) validateValue(value, `${path}.value`);
    return record as unknown as LWWRecord<V>;
  }
  // The value follows from the whole write and the field writes: made again, not trusted.
  // (`base` is required with field writes: undefined is refused as a value.)
  if (base !== null) validateValue(base, `${path}.base`);
  return withFieldWrites(
    withTtl({ value: base as V | null, timestamp: timestamp as Timestamp }, ttlMs),
    validateFieldWrites(fields, `${path}.fields`),
  );
}

/** Checks a TTL: a positive integer number of milliseconds. */
export function validateTtl(ttlMs: unknown, path = 'ttlMs'): number {
  if (!isIntegerIn(ttlMs, 1, Number.MAX_SAFE_INTEGER)) {
    throw new ValidationError(path, `${TTL_ISSUE}, got ${describeValue(ttlMs)}`);
  }
  return ttlMs;
}
