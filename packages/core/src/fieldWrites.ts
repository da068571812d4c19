import { describeValue } from './describeValue.js';
import { compareValueEncodings } from './encodingOrder.js';
import { ValidationError } from './errors.js';
import type { LWWRecord } from './lwwRecord.js';
import { compareTimestamps, type Timestamp, validateTimestamp } from './timestamp.js';
import { type Value, validateValue } from './value.js';

/*
 * Per-field merge (data model 2, `specifications/data-model.md`): a record is its last whole
 * write (set or delete) and the field writes (update) made after it, at most one per
 * top-level field name. Records without field writes are exactly data model 1 records, and
 * every function here takes the short way for them.
 */

/** A write of one top-level field of a record (`update`): its new value, or its removal. */
export interface FieldWrite {
  /** When, and by which node, the field was written. */
  readonly timestamp: Timestamp;
  /** The field's new value; `undefined` when the write removed the field. */
  readonly value?: Value;
}

/** A record's field writes, by field name. */
export type FieldWrites = Readonly<Record<string, FieldWrite>>;

/**
 * The whole write of a key that has only field writes (a patch of a record this replica never
 * held): a tombstone earlier than every timestamp, so any real whole write wins over it.
 */
export const EMPTY_WRITE_TIMESTAMP: Timestamp = Object.freeze({
  millis: 0,
  counter: 0,
  nodeId: '',
});

/** Whether `timestamp` is the empty write's (see {@link EMPTY_WRITE_TIMESTAMP}). */
export function isEmptyWrite(timestamp: unknown): boolean {
  const { millis, counter, nodeId } = (timestamp ?? {}) as Record<string, unknown>;
  return millis === 0 && counter === 0 && nodeId === '';
}

/** A record with `ttlMs` when there is one (no `ttlMs: undefined`). */
export function withTtl<T extends object>(record: T, ttlMs: unknown): T {
  return ttlMs === undefined || ttlMs === null ? record : { ...record, ttlMs };
}

/**
 * The order of two writes of one field, positive when `a` wins: the later timestamp; on equal
 * timestamps a removal beats a value, then the greater canonical encoding of the value.
 */
export function compareFieldWrites(a: FieldWrite, b: FieldWrite): number {
  const byTime = compareTimestamps(a.timestamp, b.timestamp);
  if (byTime !== 0) return byTime;
  if (a.value === undefined || b.value === undefined) {
    if (a.value !== undefined) return -1;
    return b.value !== undefined ? 1 : 0;
  }
  return compareValueEncodings(a.value, b.value);
}

/** Whether a value is a plain object (the kind of value field writes apply to). */
export function isObject(value: unknown): value is Readonly<Record<string, Value>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A record's value from its whole write's value and its field writes: the whole write's object
 * with each field write applied (a field it has keeps its place, new ones follow in the order
 * of their names), or the whole write's value itself when that is not a plain object.
 */
export function applyFieldWrites<V>(base: V | null, fields: FieldWrites): V | null {
  if (!isObject(base)) return base;
  const value: Record<string, Value> = {};
  for (const name in base) {
    // Own writes only: a field named like an Object.prototype member has none by inheritance.
    const write = Object.hasOwn(fields, name) ? fields[name] : undefined;
    if (write === undefined) value[name] = base[name]!;
    else if (write.value !== undefined) value[name] = write.value;
  }
  for (const name of Object.keys(fields).sort()) {
    const added = fields[name]!.value;
    if (added !== undefined && !Object.hasOwn(base, name)) value[name] = added;
  }
  return value as V;
}

/**
 * The record made of a whole write (a record without field writes) and field writes, those
 * not later than the whole write left out.
 */
export function withFieldWrites<V>(whole: LWWRecord<V>, fields: FieldWrites): LWWRecord<V> {
  let kept: Record<string, FieldWrite> | undefined;
  for (const name in fields) {
    const write = fields[name]!;
    if (compareTimestamps(write.timestamp, whole.timestamp) <= 0) continue;
    kept ??= {};
    kept[name] = write;
  }
  if (kept === undefined) return whole;
  return withTtl(
    {
      value: applyFieldWrites(whole.value, kept),
      timestamp: whole.timestamp,
      fields: kept,
      base: whole.value,
    },
    whole.ttlMs,
  );
}

/** A record's whole write alone: the record without its field writes. */
export function wholeWriteOf<V>(record: LWWRecord<V>): LWWRecord<V> {
  if (record.fields === undefined) return record;
  return withTtl({ value: record.base ?? null, timestamp: record.timestamp }, record.ttlMs);
}

/** The latest timestamp of a record: of its whole write or of its latest field write. */
export function latestTimestamp(record: LWWRecord<unknown>): Timestamp {
  let latest = record.timestamp;
  for (const name in record.fields) {
    const { timestamp } = record.fields[name]!;
    if (compareTimestamps(timestamp, latest) > 0) latest = timestamp;
  }
  return latest;
}

/**
 * Checks the field writes of a record that came from outside.
 * @throws {ValidationError} naming the malformed field write.
 */
export function validateFieldWrites(fields: unknown, path: string): FieldWrites {
  if (!isObject(fields)) {
    throw new ValidationError(path, `expected field writes by name, got ${describeValue(fields)}`);
  }
  for (const name in fields) {
    // A field write is `{ timestamp, value? }`: anything else fails on its timestamp.
    const write = fields[name] as { timestamp?: unknown; value?: unknown } | null;
    validateTimestamp(write?.timestamp, `${path}.${name}.timestamp`);
    // Its value is a field of the record's value, checked as one, which also checks the name
    // (no `__proto__`, no lone surrogate), a removal's too.
    validateValue({ [name]: write?.value ?? null }, path);
  }
  return fields as unknown as FieldWrites;
}

/**
 * Splits `record` into what it still holds of `write`, a write this replica made (a whole
 * write, or field writes alone as `LWWMap.update` returns them), and the rest: `held` has the
 * record's whole write when it has `write`'s timestamp, and each field write of `write` the
 * record holds with the same timestamp; `rest` is the record without them (undefined when
 * nothing is left). Undefined when the record holds nothing of `write` (later writes replaced
 * all of it). How a replica takes back its own write: rolls back a refused one, stamps one
 * again.
 */
export function splitWrite<V>(
  record: LWWRecord<V>,
  write: LWWRecord<V>,
): { readonly held: LWWRecord<V>; readonly rest: LWWRecord<V> | undefined } | undefined {
  const wholeHeld =
    !isEmptyWrite(write.timestamp) && compareTimestamps(record.timestamp, write.timestamp) === 0;
  const held: Record<string, FieldWrite> = {};
  const rest: Record<string, FieldWrite> = {};
  let fieldsHeld = false;
  const written = write.fields ?? {};
  for (const name in record.fields) {
    const kept = record.fields[name]!;
    const own = Object.hasOwn(written, name) ? written[name] : undefined;
    if (own !== undefined && compareTimestamps(kept.timestamp, own.timestamp) === 0) {
      held[name] = kept;
      fieldsHeld = true;
    } else {
      rest[name] = kept;
    }
  }
  if (!wholeHeld && !fieldsHeld) return undefined;
  const empty: LWWRecord<V> = { value: null, timestamp: EMPTY_WRITE_TIMESTAMP };
  const left = withFieldWrites(wholeHeld ? empty : wholeWriteOf(record), rest);
  return {
    held: withFieldWrites(wholeHeld ? wholeWriteOf(record) : empty, held),
    rest: left.fields === undefined && isEmptyWrite(left.timestamp) ? undefined : left,
  };
}

/**
 * `write` (a whole write, or field writes alone) made again at `timestamp`: the same value, or
 * the same field values and removals, stamped `timestamp`.
 */
export function restampWrite<V>(write: LWWRecord<V>, timestamp: Timestamp): LWWRecord<V> {
  const { fields } = write;
  if (fields === undefined) return { ...write, timestamp };
  const again: Record<string, FieldWrite> = {};
  for (const name in fields) again[name] = { ...fields[name]!, timestamp };
  return { ...write, fields: again };
}
